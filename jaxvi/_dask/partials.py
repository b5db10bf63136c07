"""Per-partition statistics: the group-by of :mod:`jaxvi._tables.statistics`, on one thread.

Each input partition (a pandas DataFrame) goes through the very query and checks that
:func:`jaxvi.fit_table` runs on a whole table, so that a NaN, a missing value, a non-numeric
value or a λ that varies inside the partition is named exactly as ``fit_table`` names it. What
leaves is the query's own columns (n, the mean as ``shift``, ``Σ(x − x̄)²`` as ``sum_x2``, and
min/max/count of a λ or σ column), one row per dataset of the partition, tagged with the
partition's number: partial statistics that :mod:`jaxvi._dask.merge` combines exactly.
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


def _param_columns(name: str | None) -> dict[str, str]:
    if name is None:
        return {}
    return {f"min:{name}": "float64", f"max:{name}": "float64", f"count:{name}": "int64"}


def partial_meta(id_dtype: Any, lam: str | None, sigma: str | None) -> pd.DataFrame:
    """The empty frame of a partition's partial statistics (Dask's ``meta``)."""
    dtypes = {
        "dataset_id": id_dtype,
        "num_rows": "int64",
        "n": "int64",
        "shift": "float64",
        "sum_x2": "float64",
        "non_finite": "int64",
        **_param_columns(lam),
        **_param_columns(sigma),
        PART: "int64",
    }
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
        batches = list(statistics_batches(con, layout, _ROWS, raw=True))
    finally:
        con.close()
    out = pa.Table.from_batches(batches).combine_chunks().to_pandas()
    out[PART] = np.int64(part)
    return out.astype(empty.dtypes.to_dict())
