"""Host-side layout for :func:`jaxvi.fit`: datasets as windows of flat values, and the blocks
of the XLA engine (the plan of their shapes is :mod:`jaxvi._fit.plan`).

A dataset that fits one row of its bucket's width goes to the device as a *raw window*,
``values[start:start + width]``: the dataset and whatever follows it (:func:`gather_block`).
The device then shifts by the row's first value and masks the slots past the dataset's length
in one fused two-output reduction (``suff_stats(block, lengths)``). The host makes one copy
per value and nothing else.

Data computed in a narrower dtype than their own (float64 or integer data in float32) are
instead shifted on the host in the wider dtype and zero-padded (:func:`build_block`), so that
the spread survives a large common offset; the zeros add nothing to ``Σ(x − shift)`` or
``Σ(x − shift)²`` and the device does plain row sums. So are the rows of long datasets, which
share their dataset's shift.

Nothing here loops over datasets in Python: blocks are built by row gathers into 64-byte
aligned buffers (which the CPU backend takes without a copy), and a shifted block's padding is
zeroed one slice per distinct length.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

import numpy as np

from jaxvi._fit.aligned import aligned_empty

__all__ = [
    "Flat",
    "LongRows",
    "build_block",
    "gather_block",
    "work_dtype",
]


class Flat(NamedTuple):
    """Datasets as windows of one flat host array.

    Attributes:
        values: ``(M,)`` host values. Dataset ``d`` is ``values[starts[d]:starts[d] + lengths[d]]``;
            values outside every window may be garbage (the padding of a :class:`~jaxvi.Padded`).
        starts: ``(D,)`` int64 first index of each dataset.
        lengths: ``(D,)`` int64 number of values of each dataset; 0 where ``invalid``.
        invalid: ``(D,)`` bool, datasets whose window does not fit (bad offsets or lengths
            that were not validated): nothing is read for them, and their row is NaN.
    """

    values: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    invalid: np.ndarray

    @classmethod
    def windows(
        cls,
        values: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
        ends,
        *,
        checked: bool = False,
    ) -> Flat:
        """A :class:`Flat` whose windows must end by ``ends`` (scalar or ``(D,)``).

        ``checked``: the offsets or lengths were validated, so every window fits and the
        per-dataset test is skipped."""
        if checked:
            return cls(values, starts, lengths, np.zeros(lengths.shape, bool))
        invalid = (lengths < 0) | (starts < 0) | (starts + lengths > ends)
        return cls(values, starts, np.where(invalid, 0, lengths), invalid)

    def shifts(self) -> np.ndarray:
        """``(D,)`` the first value of each dataset (0 for an empty one), in the values' dtype."""
        m = self.values.shape[0]
        if m == 0:
            return np.zeros(self.starts.shape, self.values.dtype)
        first = self.values.take(self.starts, mode="clip")
        return np.where(self.lengths > 0, first, np.zeros((), self.values.dtype))


class LongRows(NamedTuple):
    """Fixed-width rows cut from the datasets longer than the widest bucket, made on demand.

    Only per-dataset arrays are kept, so the bookkeeping grows with the number of long
    datasets, not with their number of rows (that is, with the input).

    Attributes:
        starts: ``(L,)`` first value of each long dataset in the flat array.
        lengths: ``(L,)`` length of each long dataset.
        first_row: ``(L + 1,)`` index of each long dataset's first row, then the row count.
        width: the row width.
    """

    starts: np.ndarray
    lengths: np.ndarray
    first_row: np.ndarray
    width: int

    @property
    def num_rows(self) -> int:
        return int(self.first_row[-1])

    def rows(self, sl: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(dataset, starts, lengths)`` of the rows ``sl``; ``dataset`` indexes the long
        datasets, and a dataset's rows are consecutive."""
        row = np.arange(sl.start, sl.stop)
        dataset = np.searchsorted(self.first_row, row, side="right") - 1
        piece = (row - self.first_row[dataset]) * self.width
        return (
            dataset,
            self.starts[dataset] + piece,
            np.minimum(self.width, self.lengths[dataset] - piece),
        )


def build_block(
    flat: Flat,
    starts: np.ndarray,
    lengths: np.ndarray,
    shifts: np.ndarray | None,
    width: int,
    rows: int,
    dtype: np.dtype,
) -> np.ndarray:
    """A ``(rows, width)`` block of ``values[start:start + length] − shift``, zero-padded.

    ``shifts=None`` takes each row's own first value, rounded to ``dtype``: the shift of a
    dataset that fits in one row, read from the row just gathered instead of gathered apart.

    Fastest when ``lengths`` are sorted (see :func:`_zero_padding`). Rows past
    ``len(starts)`` are all zero. Slots past a row's length are zero whatever the flat array
    holds there (NaN included), so a bad value never leaks into another row.
    The subtraction runs in the dtype of ``shifts`` (float64 for float64 or integer data)
    before rounding to ``dtype``, so the spread survives a large common offset. The block is
    64-byte aligned (:func:`aligned_empty`), so the CPU backend takes it without a copy.
    """
    return _fill(
        partial(_fill_shifted, flat.values, starts, lengths, shifts),
        flat,
        starts,
        width,
        rows,
        dtype,
    )


def gather_block(
    flat: Flat, starts: np.ndarray, width: int, rows: int, dtype: np.dtype
) -> np.ndarray:
    """A ``(rows, width)`` block of the raw windows ``values[start:start + width]``.

    Slots past a dataset's length hold whatever follows it in the flat array (its neighbours,
    NaN, garbage), so the device must mask them: ``suff_stats(block, lengths)`` does, and
    shifts by each row's first value as :func:`build_block` would. The host then makes one
    copy per value, with no shift and no zeroing. Rows past ``len(starts)`` are all zero;
    the block is 64-byte aligned (:func:`aligned_empty`).
    """
    return _fill(partial(_fill_raw, flat.values, starts), flat, starts, width, rows, dtype)


def _fill(
    fill: Callable[[np.ndarray, int, int], None],
    flat: Flat,
    starts: np.ndarray,
    width: int,
    rows: int,
    dtype: np.dtype,
) -> np.ndarray:
    """An aligned ``(rows, width)`` block whose rows ``0:len(starts)`` are made by
    ``fill(block, lo, hi)`` (in two threads when large) and whose other rows are zero."""
    k = starts.shape[0]
    block = aligned_empty((rows, width), dtype)
    block[k:] = 0  # padding rows: empty datasets
    if flat.values.shape[0] == 0:
        block[:] = 0
        return block
    if k * width < _SPLIT_VALUES:
        fill(block, 0, k)
        return block
    # NumPy releases the GIL in these copies: a second thread builds the other half of the
    # rows (1.5x on 2 idle cores for a 16 MB block).
    half = k // 2
    other = _worker().submit(fill, block, half, k)
    fill(block, 0, half)
    other.result()
    return block


_SPLIT_VALUES = 1 << 18


@functools.cache
def _worker() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxvi-blocks")


def _gather_rows(values: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``values[start:start + width]`` per start, a fresh ``(len(starts), width)`` array; a
    window running past either end of the values is clipped to it, value by value."""
    m = values.shape[0]
    if m < width:
        return values.take(starts[:, None] + np.arange(width), mode="clip")
    late = np.flatnonzero((starts < 0) | (starts > m - width))
    raw = _row_gather(values, np.clip(starts, 0, m - width) if late.size else starts, width)
    if late.size:
        raw[late] = values.take(starts[late, None] + np.arange(width), mode="clip")
    return raw


def _fill_raw(values: np.ndarray, starts: np.ndarray, block: np.ndarray, lo: int, hi: int) -> None:
    """Rows ``lo:hi`` of :func:`gather_block`'s block."""
    with np.errstate(all="ignore"):  # a cast of garbage to a narrower float may overflow
        block[lo:hi] = _gather_rows(values, starts[lo:hi], block.shape[1])


def _fill_shifted(
    values: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    shifts: np.ndarray | None,
    block: np.ndarray,
    lo: int,
    hi: int,
) -> None:
    """Rows ``lo:hi`` of :func:`build_block`'s block."""
    out, lengths = block[lo:hi], lengths[lo:hi]
    # NaN/inf in unvalidated data or garbage padding is expected here and zeroed below.
    # (errstate is per thread: this may run in the worker.)
    with np.errstate(all="ignore"):
        raw = _gather_rows(values, starts[lo:hi], block.shape[1])
        if shifts is None:  # the shift as the device will see it: rounded to the block's dtype
            shifts = raw[:, 0].astype(block.dtype).astype(work_dtype(values.dtype))
        else:
            shifts = shifts[lo:hi]
        # Subtract in the shift's dtype, round once into the aligned block.
        np.subtract(raw, shifts[:, None], out=out, dtype=shifts.dtype, casting="unsafe")
    _zero_padding(out, lengths)


def work_dtype(values_dtype: np.dtype) -> np.dtype:
    """The dtype of the host subtraction: float64 for float64 or integer data, else float32."""
    return np.result_type(values_dtype, np.float32)


def _zero_padding(block: np.ndarray, lengths: np.ndarray) -> None:
    """Zero ``block[i, lengths[i]:]`` for every row ``i`` (``0 ≤ lengths ≤ width``).

    Rows sorted by length (as :func:`split_buckets` orders them) take one slice per distinct
    length: a memset of the padding alone. Others (the rows of long datasets) take a mask.
    """
    k, width = block.shape
    if k == 0:
        return
    step = np.flatnonzero(lengths[1:] != lengths[:-1]) + 1
    if (lengths[step] > lengths[step - 1]).all():
        for lo, hi in zip([0, *step], [*step, k], strict=True):
            block[lo:hi, lengths[lo] :] = 0
        return
    # Only columns at or past the shortest row can hold slots past a row's length.
    lo = int(lengths.min())
    np.copyto(block[:, lo:], 0, where=np.arange(lo, width) >= lengths[:, None])


def _row_gather(values: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``values[start:start + width]`` for every start, as a fresh ``(len(starts), width)`` array.

    Each window is viewed as one opaque item of ``width`` values, so the gather copies whole
    rows: 2-3x faster than indexing a ``sliding_window_view``, and far faster than an
    element-wise gather with an index per value. (``np.take`` with ``out=`` would first copy
    the overlapping windows into a contiguous array: ``width`` times the input.)
    """
    values = np.ascontiguousarray(values)
    item = np.dtype((np.void, values.itemsize * width))
    windows = np.ndarray(
        shape=(values.shape[0] - width + 1,),
        dtype=item,
        buffer=values,
        strides=(values.itemsize,),
    )
    return windows[starts].view(values.dtype).reshape(starts.shape[0], width)
