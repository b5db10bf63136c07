"""A shuffled partition of partial statistics → merged, checked, solved; and λ̂ over all.

After the shuffle a partition holds every partial of its datasets. They are merged
(:func:`~jaxvi._dask.merge.merge_partials`), checked by the same code as
:func:`jaxvi.fit_table`'s batches (:func:`~jaxvi._tables.checked_batches.long_batch`: here it
finds what only the merge shows, a λ or σ that differs between partitions), and solved by the
table kernel in batches of one fixed size (:func:`~jaxvi._results.result_batches.result_batch`), so
each worker process compiles it once per dtype. float64 runs inside ``jax.enable_x64``: x64 is
a per-process setting, and a worker's is not the client's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jaxvi._results.kernel import RESULT_COLUMNS
from jaxvi._results.result_batches import estimate_over, result_batch
from jaxvi._results.table_fit import BATCH_SIZE
from jaxvi._tables.checked_batches import StatsBatch, long_batch
from jaxvi._tables.engine import require
from jaxvi._tables.sources import Source
from jaxvi._tables.statistics import Layout

__all__ = ["Problem", "estimate_partitions", "result_meta", "solve_partition"]


@dataclass(frozen=True)
class Problem:
    """What every task needs to know of the run: the input's label and columns, the dtype."""

    label: str
    id: str
    x: str
    lam_column: str | None
    sigma_column: str | None
    dtype: str
    batch_size: int = BATCH_SIZE

    @property
    def layout(self) -> Layout:
        return Layout(
            Source(self.label, "frame"), self.id, self.x, self.lam_column, self.sigma_column
        )

    def batches(self, merged: pd.DataFrame) -> Iterator[StatsBatch]:
        """The merged statistics as checked batches of at most ``batch_size`` datasets."""
        pa = require("pyarrow")
        table = pa.Table.from_pandas(merged, preserve_index=False)
        for batch in table.to_batches(self.batch_size):
            yield long_batch(None, self.layout, batch)


@contextlib.contextmanager
def _precision(dtype: str) -> Iterator[None]:
    """JAX's x64 switched on in this thread for float64 (and only for this block)."""
    if dtype != "float64":
        yield
        return
    import jax

    with jax.enable_x64(True):
        yield


def result_meta(id_dtype: Any, dtype: str) -> pd.DataFrame:
    """The empty frame of results: :func:`jaxvi.fit_table`'s columns, with the dtypes its
    Arrow table takes in pandas (ids: the input's integers, or text)."""
    pa = require("pyarrow")
    if isinstance(id_dtype, pd.ArrowDtype):
        id_type = id_dtype.pyarrow_dtype
    elif pd.api.types.is_integer_dtype(id_dtype):
        id_type = pa.from_numpy_dtype(np.dtype(id_dtype))
    else:
        id_type = pa.string()
    if pa.types.is_large_string(id_type) or pa.types.is_string_view(id_type):
        id_type = pa.string()
    fields = [("dataset_id", id_type), ("n", pa.int64())]
    fields += [(c, pa.from_numpy_dtype(np.dtype(dtype))) for c in RESULT_COLUMNS[2:]]
    return pa.schema(fields).empty_table().to_pandas()


def solve_partition(
    merged: pd.DataFrame,
    problem: Problem,
    *,
    lam: float | None,
    sigma: float | None,
    theta: float | None,
    empty: pd.DataFrame,
) -> pd.DataFrame:
    """The results of one partition of merged statistics, ``(D_part, 11)``, sorted by id;
    ``lam``/``sigma`` ``None`` when they come from columns."""
    if len(merged) == 0:
        return empty
    pa = require("pyarrow")
    dtype = np.dtype(problem.dtype)
    out = []
    with _precision(problem.dtype):
        for batch in problem.batches(merged):
            lam_of = batch.lam if lam is None else lam
            sigma_of = batch.sigma if sigma is None else sigma
            assert lam_of is not None and sigma_of is not None  # else a column gives them
            out.append(
                result_batch(
                    batch,
                    lam=lam_of,
                    sigma=sigma_of,
                    theta=theta,
                    dtype=dtype,
                    exact=True,
                    batch_size=problem.batch_size,
                    label=problem.label,
                )
            )
    frame = pa.Table.from_batches(out).to_pandas()
    return frame.astype(empty.dtypes.to_dict())


def estimate_partitions(
    partitions: Sequence[pd.DataFrame],
    problem: Problem,
    estimator: Callable[..., Any],
    sigma: float | None,
) -> float:
    """λ̂ = ``estimator`` over every dataset of the merged partitions (one task: O(D) floats)."""
    batches = [b for p in partitions for b in problem.batches(p)]
    with _precision(problem.dtype):
        return estimate_over(
            batches, estimator, sigma=sigma, dtype=np.dtype(problem.dtype), label=problem.label
        )
