"""Per-partition statistics: the group-by of :mod:`jaxvi._tables.statistics`, on one thread.

Each input partition (a pandas DataFrame) goes through the very query and checks that
:func:`jaxvi.fit_table` runs on a whole table, so that a NaN, a missing value, a non-numeric
value or a λ that varies inside the partition is named exactly as ``fit_table`` names it. What
leaves is n, the mean as ``shift``, ``Σ(x − x̄)²`` as ``sum_x2`` and the value of a λ or σ
column, one row per dataset of the partition, tagged with the partition's number: partial
statistics that :mod:`jaxvi._dask.merge` combines exactly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from jaxvi._tables.checked_batches import statistics_batches
from jaxvi._tables.engine import connect, require
from jaxvi._tables.sources import open_source
from jaxvi._tables.statistics import plan_statistics

__all__ = ["PART", "partial_meta", "partition_partials"]

PART = "part"  # the input partition a row of partials comes from: the merge's fixed order
_ROWS = 1 << 16


def partial_meta(id_dtype: Any, lam: str | None, sigma: str | None) -> pd.DataFrame:
    """The empty frame of a partition's partial statistics (Dask's ``meta``): ``dataset_id``,
    ``n``, ``shift`` (the mean), ``sum_x2`` (``Σ(x − x̄)²``), ``p:<column>`` for a λ or σ
    column, and ``part``. What the checks made redundant is not shuffled: the row count
    (= n), the NaN/inf count (0), and the min/max/count of a parameter (one value, given)."""
    dtypes = {"dataset_id": id_dtype, "n": "int64", "shift": "float64", "sum_x2": "float64"}
    dtypes.update({f"p:{c}": "float64" for c in (lam, sigma) if c})
    dtypes[PART] = "int32"
    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in dtypes.items()})


def partition_partials(
    frame: pd.DataFrame,
    *,
    id: str,
    x: str,
    lam: str | None,
    sigma: str | None,
    label: str,
    empty: pd.DataFrame,
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The partial statistics of one input partition, ``(D_part, ...)`` as :func:`partial_meta`.

    Raises:
        ValueError: one line naming ``label`` and the first bad dataset of the partition.
    """
    part = 0 if partition_info is None else int(partition_info["number"])
    if len(frame) == 0:
        return empty
    pa = require("pyarrow")
    columns = list(dict.fromkeys(c for c in (id, x, lam, sigma) if c))
    con = connect(threads=1)  # a Dask worker runs one task per thread
    try:
        # DuckDB reads a NumPy float column's NaN as missing, as pandas means it; an Arrow
        # column (jaxvi's readers ask Dask for them) keeps NaN and missing apart.
        table = pa.Table.from_pandas(frame[columns], preserve_index=False)
        src = replace(open_source(con, table), label=label)
        layout = plan_statistics(con, src, id=id, x=x, lam=lam, sigma=sigma)
        layout = replace(layout, ordered=False)  # the merge sorts; a sort here is wasted
        batches = list(statistics_batches(con, layout, _ROWS, raw=True))
    finally:
        con.close()
    stats = pa.Table.from_batches(batches).combine_chunks()
    out = stats.select(["dataset_id", "n", "shift", "sum_x2"]).to_pandas()
    for c in (lam, sigma):
        if c:  # checked: given on every row, one value per dataset
            out[f"p:{c}"] = stats[f"min:{c}"].to_numpy()
    out[PART] = np.int32(part)
    return out.astype(empty.dtypes.to_dict())
