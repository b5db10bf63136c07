r"""Chan's merge of partial statistics, in a fixed order.

For two parts :math:`(n_1, m_1, M_1)` and :math:`(n_2, m_2, M_2)` of one dataset (count,
mean, :math:`\sum (x - \bar x)^2`), with :math:`\delta = m_2 - m_1` and :math:`n = n_1 + n_2`
(Chan, Golub and LeVeque, 1979):

.. math::  m = m_1 + \delta\, n_2 / n, \qquad M = M_1 + M_2 + \delta^2 n_1 n_2 / n.

No :math:`\sum x^2 - (\sum x)^2/n` appears, so a dataset 10⁶ sd from zero keeps its spread
(Dask's grouped ``var`` loses it there). A dataset's parts are merged in the order of the input
partitions they come from, so that a run's results are the same bits every time, whichever
worker finished first. Counts add; the min and max of a λ or σ column take the min and max.
Nothing here imports JAX.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from jaxvi._dask.partials import PART

__all__ = ["merge_partials"]


def merge_partials(partials: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset, sorted by id, from the rows of partial statistics of
    :func:`~jaxvi._dask.partials.partition_partials` (any number per dataset, in any order),
    with the columns of the statistics query of a whole table
    (:func:`~jaxvi._tables.statistics.statistics_queries`), so that
    :func:`~jaxvi._tables.checked_batches.long_batch` checks them as it checks a table's.

    Examples:
        >>> parts = pd.DataFrame({"dataset_id": [7, 7], "n": [2, 1], "shift": [1.0, 4.0],
        ...     "sum_x2": [2.0, 0.0], "part": [0, 1]})
        >>> merge_partials(parts)[["dataset_id", "n", "shift", "sum_x2"]]  # x = 0, 2, 4
           dataset_id  n  shift  sum_x2
        0           7  3    2.0     8.0
    """
    ordered = partials.take(_order(partials)).reset_index(drop=True)
    ids = ordered["dataset_id"].to_numpy()
    first = np.ones(len(ids), bool)
    first[1:] = ids[1:] != ids[:-1]
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    rank = np.arange(len(ids)) - starts[group]

    count = ordered["n"].to_numpy(np.float64)
    mean_in = ordered["shift"].to_numpy(np.float64)
    m2_in = ordered["sum_x2"].to_numpy(np.float64)
    n, mean, m2 = count[starts].copy(), mean_in[starts].copy(), m2_in[starts].copy()
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(1, int(rank.max(initial=0)) + 1):
            rows = np.flatnonzero(rank == k)  # at most one part of each dataset per step
            g, n2 = group[rows], count[rows]
            total = n[g] + n2
            delta = mean_in[rows] - mean[g]
            mean[g] += delta * (n2 / total)
            m2[g] += m2_in[rows] + delta * delta * (n[g] * n2 / total)
            n[g] = total

    merged: dict[str, Any] = {
        "dataset_id": ordered["dataset_id"].iloc[starts].reset_index(drop=True),
        "num_rows": n.astype(np.int64),
        "n": n.astype(np.int64),
        "shift": mean,
        "sum_x2": m2,
        "non_finite": np.zeros(len(starts), np.int64),
    }
    for name in partials.columns:
        if name.startswith("p:"):  # a λ or σ column: the merge's checks compare min and max
            values = ordered[name].to_numpy(np.float64)
            column = name[2:]
            merged[f"min:{column}"] = _reduce(np.minimum, values, starts)
            merged[f"max:{column}"] = _reduce(np.maximum, values, starts)
            merged[f"count:{column}"] = n.astype(np.int64)
    return pd.DataFrame(merged)


def _order(partials: pd.DataFrame) -> np.ndarray:
    """The rows' order by id, then by input partition: NumPy's lexsort for integer ids (about
    twice as fast as pandas' sort on 2·10⁶ rows), pandas' for text."""
    ids = partials["dataset_id"]
    if pd.api.types.is_integer_dtype(ids.dtype):
        return np.lexsort((partials[PART].to_numpy(), ids.to_numpy()))
    keys = pd.DataFrame({"id": ids.to_numpy(), "part": partials[PART].to_numpy()})
    return keys.sort_values(["id", "part"], kind="stable").index.to_numpy()


def _reduce(ufunc: np.ufunc, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return ufunc.reduceat(values, starts) if len(starts) else values[:0]
