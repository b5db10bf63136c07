"""``fit``'s statistics on a CPU backend: the native kernel on the host values, as they lie.

Datasets are windows of one flat host array (:class:`~jaxvi._fit.buckets.Flat`: a ragged
layout, or the rows of a padded block). The native kernel (:mod:`jaxvi._stats.native`) reads
each window once, on every core, in place: no length buckets, no gather, no copy (integer data
is converted to float64 once). The windows go in chunks of about ``chunk_size`` values, one
call each, so a progress bar moves and the memory the kernel touches stays bounded.

Data wider than the compute dtype (float64 computed in float32) are summed in float64 and
rounded after (:func:`~jaxvi._model.shift.rebase`), so a large common offset keeps its
spread.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from jaxvi._fit.aligned import aligned_stats
from jaxvi._fit.buckets import Flat
from jaxvi._model.shift import rebase
from jaxvi._stats import native

__all__ = ["native_chunks", "native_stats"]


def native_chunks(flat: Flat, chunk_size: int) -> list[slice]:
    """Consecutive runs of datasets holding about ``chunk_size`` values each (a dataset longer
    than that is a run of its own)."""
    num = flat.starts.shape[0]
    if num == 0:
        return []
    ends = np.cumsum(flat.lengths)
    cuts = np.searchsorted(ends, np.arange(chunk_size, int(ends[-1]), chunk_size), side="left")
    edges = np.unique(np.r_[0, cuts + 1, num].clip(0, num))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def native_stats(
    flat: Flat, dtype: np.dtype, chunk_size: int, rows: int, bar: Any
) -> tuple[np.ndarray, ...]:
    """``(n, sum_x, sum_x2, shift)`` of every dataset of ``flat``, in ``dtype``.

    Each is a 64-byte aligned array of ``max(D, rows)`` entries, 0 past ``D`` (the solve's
    chunks are then views of them). A dataset whose window does not fit (``flat.invalid``) gets
    NaN in its own row."""
    lib = native.load()
    if lib is None:  # pragma: no cover - callers check native.available()
        raise RuntimeError(f"the native kernel is not available: {native.reason()}")
    values = flat.values
    if values.dtype not in (np.float32, np.float64) or dtype.itemsize > values.dtype.itemsize:
        values = values.astype(np.float64)  # integers, or float32 data solved in float64
    num = flat.starts.shape[0]
    out = aligned_stats(num, rows, dtype)
    n, sum_x, sum_x2, shift = out
    for sl in native_chunks(flat, chunk_size):
        cn, cshift, cs1, cs2 = lib.window_stats(values, flat.starts[sl], flat.lengths[sl])
        if cn.dtype != dtype:
            cn, cs1, cs2, cshift = rebase(cn, cs1, cs2, cshift, dtype)
        n[sl], sum_x[sl], sum_x2[sl], shift[sl] = cn, cs1, cs2, cshift
        bar.update()
    shift[:num][flat.invalid] = np.nan  # NaN in the dataset's own row only (validate=False)
    return out
