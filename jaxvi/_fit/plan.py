"""The XLA engine's plan: length buckets and the row counts of every block and solve chunk.

* Widths form a geometric ladder ``min_width·2^k ≤ max_width``; a dataset goes to the
  narrowest width that holds it, so padding wastes less than half of a block.
* A dataset longer than ``max_width`` is cut into rows of ``max_width`` sharing one shift;
  their partial sums add up to the dataset's.
* Row counts are powers of two (times the device count), so the compiled shapes number
  ``O(log max_len · log chunk_size)`` and repeat from one call to the next.

Bucketing is one vectorised scan per bucket (or, for shifted blocks, one stable radix sort of
the lengths); nothing loops over datasets in Python.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np

from jaxvi._fit.buckets import Flat, LongRows

__all__ = ["ChunkPlan", "chunks", "ladder", "long_rows", "row_counts", "split_buckets"]


def ladder(min_width: int, max_width: int) -> np.ndarray:
    """The bucket widths ``min_width·2^k`` up to ``max_width`` (both powers of two), int64."""
    for name, w in (("min_width", min_width), ("max_width", max_width)):
        if w < 1 or w & (w - 1):
            raise ValueError(f"fit: {name} must be a power of two >= 1, got {w}")
    if max_width < min_width:
        raise ValueError(f"fit: max_width ({max_width}) must be >= min_width ({min_width})")
    k = int(np.log2(max_width // min_width))
    return min_width << np.arange(k + 1, dtype=np.int64)


def split_buckets(
    lengths: np.ndarray, widths: np.ndarray, *, by_length: bool = True
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Dataset indices per bucket and their lengths; the last entry holds the datasets longer
    than ``widths[-1]`` (their lengths capped at ``widths[-1] + 1``), in input order. Empty
    datasets go nowhere: their sums are 0.

    ``by_length``: each bucket sorted by length (input order among equal lengths), so that the
    rows of a shifted block need their padding zeroed in a few slices (:func:`build_block`);
    one stable sort on the capped lengths, 16-bit keys that NumPy sorts by radix (13 ms for
    10⁶ datasets against 42 ms for int64 keys). Otherwise every bucket is in input order: rows
    of raw windows (:func:`gather_block`) are then read in memory order, which is 1.5x faster
    than in length order for 10⁶ datasets (fewer cache misses); one scan per bucket.

    Returns:
        ``(indices, lengths)``: ``len(widths) + 1`` int64 index arrays and as many arrays of
        their (capped) lengths.
    """
    cap = int(widths[-1]) + 1
    if by_length:
        key = np.minimum(lengths, cap).astype(np.uint16 if cap < 1 << 16 else np.uint32)
        order = np.argsort(key, kind="stable")
        key = key[order]
        bounds = np.searchsorted(key, [1, *(widths + 1), cap + 1], side="left")
        pairs = list(itertools.pairwise(bounds))
        return [order[lo:hi] for lo, hi in pairs], [key[lo:hi] for lo, hi in pairs]
    capped = np.minimum(lengths, cap)
    # Bucket number of every capped length: 0 for empty, k + 1 for the k-th width, then long.
    table = np.searchsorted(widths, np.arange(cap + 1), side="left").astype(np.uint8) + 1
    table[0] = 0
    number = table[capped]
    # One scan per bucket (a dozen or so): 7 ms for 10⁶ datasets, against 14 ms for a stable
    # argsort of the 8-bit numbers.
    indices = [np.flatnonzero(number == k) for k in range(1, len(widths) + 2)]
    return indices, [capped[idx] for idx in indices]


def long_rows(flat: Flat, long_idx: np.ndarray, width: int) -> LongRows:
    """Plan the rows of ``width`` that the datasets ``long_idx`` (all longer) are cut into."""
    lengths = flat.lengths[long_idx]
    first_row = np.concatenate([[0], np.cumsum(-(-lengths // width))]).astype(np.int64)
    return LongRows(flat.starts[long_idx], lengths, first_row, width)


def row_counts(count: int, full_rows: int, min_rows: int, *, fine: bool = True) -> list[int]:
    """Rows per chunk for ``count`` rows: full chunks, then one tail.

    A small tail takes ``min_rows·4^k`` rows; a tail above an eighth of a chunk takes the
    next multiple of an eighth when ``fine``, so that padding wastes at most 1/8 of a chunk
    (the ladder alone would waste up to 3/4). Each distinct tail is one more compilation: cheap
    for a row sum, seconds for ``solve``, which is why the solve passes ``fine=False``.
    ``full_rows`` and ``min_rows`` are multiples of the device count, and so is every count
    returned. Their sum is ``>= count``; the excess rows are padding.
    """
    sizes = [full_rows] * (count // full_rows)
    rest = count - len(sizes) * full_rows
    if rest:
        tail = min_rows
        while tail < rest:
            tail *= 4
        eighth = full_rows // 8
        if fine and tail > eighth >= min_rows and eighth % min_rows == 0:
            tail = -(-rest // eighth) * eighth
        sizes.append(min(tail, full_rows))
    return sizes


def chunks(sizes: list[int], local_count: int) -> Iterator[tuple[int, slice]]:
    """``(rows, slice of this process's rows)`` per chunk. A process with fewer rows than the
    agreed sizes gets empty slices and sends padding, so every process runs the same blocks."""
    lo = 0
    for size in sizes:
        yield size, slice(min(lo, local_count), min(lo + size, local_count))
        lo += size


class ChunkPlan:
    """Block shapes of one call on one process; every row count is ``num_local·2^k``.

    ``chunk_size`` bounds the values of a block (rows × width); solving takes
    ``chunk_size // SOLVE_WIDTH`` datasets at a time, since each carries about that many
    numbers in and out.
    """

    SOLVE_WIDTH = 8

    def __init__(self, chunk_size: int, num_local: int):
        per_dev = -(-8 // num_local)
        self.min_rows = num_local * (1 << (per_dev - 1).bit_length())
        self.chunk_size = chunk_size
        self.num_local = num_local
        self.widths = np.array([1], np.int64)
        self.buckets: list[np.ndarray] = []
        self.bucket_lengths: list[np.ndarray] = []
        self.long_idx = np.zeros(0, np.int64)
        self.long = LongRows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64), 1)
        self.bucket_sizes: list[list[int]] = []
        self.long_sizes: list[int] = []
        self.solve_sizes: list[int] = []

    def full_rows(self, width: int) -> int:
        rows = max(self.chunk_size // (int(width) * self.num_local), 1)
        return max(self.min_rows, self.num_local * (1 << (rows.bit_length() - 1)))

    def sizes(self, count: int, width: int, *, fine: bool = True) -> list[int]:
        return row_counts(int(count), self.full_rows(width), self.min_rows, fine=fine)

    def widest(self, max_width: int, min_width: int) -> int:
        """The widest bucket, capped so that a minimal block still fits in ``chunk_size``."""
        cap = max(self.chunk_size // self.min_rows, 1)
        return max(min_width, min(max_width, 1 << (cap.bit_length() - 1)))

    def bucket(self, flat: Flat, widths: np.ndarray, *, by_length: bool = True) -> None:
        """Split this process's datasets into buckets (see :func:`split_buckets`) and long
        rows."""
        self.widths = widths
        self.buckets, self.bucket_lengths = split_buckets(flat.lengths, widths, by_length=by_length)
        self.long_idx = self.buckets.pop()
        self.bucket_lengths.pop()
        self.long = long_rows(flat, self.long_idx, int(widths[-1]))

    def agree(self, agree: Callable[[np.ndarray], np.ndarray], num: int) -> None:
        """Fix the chunk sizes from the counts, maximised over processes by ``agree``."""
        local = [*map(len, self.buckets), self.long.num_rows, num]
        counts = agree(np.array(local, np.int64))
        self.bucket_sizes = [
            self.sizes(c, w) for c, w in zip(counts[:-2], self.widths, strict=False)
        ]
        self.long_sizes = self.sizes(counts[-2], int(self.widths[-1]))
        self.solve_sizes = self.sizes(counts[-1], self.SOLVE_WIDTH, fine=False)

    @property
    def num_jobs(self) -> int:
        return sum(map(len, self.bucket_sizes)) + len(self.long_sizes) + len(self.solve_sizes)
