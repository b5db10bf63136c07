"""``fit``'s device engine: ragged statistics built on the device, for accelerators.

The host does only integer bookkeeping, O(datasets): each dataset's length bucket (a geometric
ladder of widths), the datasets in bucket order (a stable sort of small integers), and for the
datasets longer than the widest bucket the start of each of their rows. The values themselves
go to the device as they lie, one window of ``capacity`` values per chunk (a view of the host
array: no copy, no per-value work), and the device builds every bucket by a gather of its
datasets' windows and reduces it with :func:`~jaxvi._stats.padded.suff_stats_xla` (shifted by
each dataset's first value, masked, one fused two-output reduction). Each bucket's statistics go
back to dataset order by a scatter that *sets* (every dataset once): no float scatter-add, which
jaxlib 0.10.2-0.11.0 compile to a compare-and-swap loop on GPU. Only the rows of datasets longer
than the widest bucket are added up, by a segment sum over their few rows.

Every shape is static: the window, the datasets per chunk, and each bucket's rows (a power of
two at least the largest count of any chunk of the call), so a second call with the same bucket
shapes compiles nothing. Chunks go round-robin to the local devices.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._fit.aligned import aligned_stats
from jaxvi._fit.buckets import Flat
from jaxvi._stats.padded import suff_stats_xla

__all__ = ["device_chunks", "device_layout", "device_stats"]

_MIN_ROWS = 8


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length() if n > 0 else 0


def device_chunks(flat: Flat, capacity: int, per_chunk: int) -> list[slice]:
    """Consecutive runs of datasets whose windows fit ``capacity`` values from the first one's
    start, at most ``per_chunk`` datasets each (``capacity`` must hold the longest dataset)."""
    num = flat.starts.shape[0]
    out, lo = [], 0
    ends = flat.starts + flat.lengths
    while lo < num:
        limit = flat.starts[lo] + capacity
        hi = lo + int(np.searchsorted(ends[lo : lo + per_chunk], limit, side="right"))
        hi = max(hi, lo + 1)
        out.append(slice(lo, hi))
        lo = hi
    return out


def device_layout(flat: Flat, widths: np.ndarray, chunk_size: int) -> tuple[int, int, list[slice]]:
    """``(capacity, per_chunk, spans)``: the window of values each chunk sends (``chunk_size``
    rounded up to a power of two, or the longest dataset), the datasets per chunk, and the
    chunks themselves."""
    capacity = max(_pow2(chunk_size), _pow2(int(flat.lengths.max(initial=1))))
    per_chunk = max(_MIN_ROWS, capacity // int(widths[0]))
    return capacity, per_chunk, device_chunks(flat, capacity, per_chunk)


def _buckets(lengths: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Each dataset's bucket (int8): the narrowest width that holds it; ``len(widths)`` when
    longer. A lookup in a table of every length up to the widest bucket (one pass, about 12×
    faster than a binary search per dataset, measured)."""
    table = np.searchsorted(widths, np.arange(int(widths[-1]) + 2), side="left").astype(np.int8)
    return np.take(table, lengths, mode="clip")


@partial(jax.jit, static_argnames=("widths", "caps", "long_cap"))
def _chunk_stats(
    values, starts, lengths, order, first, count, row_start, row_dataset, row_len,
    *, widths, caps, long_cap,
):  # fmt: skip
    """The statistics of one chunk's datasets (``(n, sum_x, sum_x2, shift)``, ``(Dc,)``)."""
    dc = starts.shape[0]
    m = values.shape[0]
    dtype = values.dtype
    ext_starts = jnp.concatenate([starts, jnp.zeros(1, starts.dtype)])
    ext_lengths = jnp.concatenate([lengths, jnp.zeros(1, lengths.dtype)])
    shift = jnp.where(lengths > 0, values[jnp.clip(starts, 0, m - 1)], 0).astype(dtype)
    s1 = jnp.zeros(dc + 1, dtype)
    s2 = jnp.zeros(dc + 1, dtype)
    for b, (width, cap) in enumerate(zip(widths, caps, strict=True)):
        if cap == 0:
            continue
        slot = jnp.arange(cap, dtype=jnp.int32)
        pos = jnp.clip(first[b] + slot, 0, dc - 1)
        ds = jnp.where(slot < count[b], order[pos], dc)  # rows past the bucket: the dump slot
        cols = jnp.clip(
            ext_starts[ds][:, None] + jnp.arange(width, dtype=jnp.int32)[None, :], 0, m - 1
        )
        st = suff_stats_xla(values[cols], ext_lengths[ds])
        s1 = s1.at[ds].set(st.sum_x)
        s2 = s2.at[ds].set(st.sum_x2)
    if long_cap:
        width = widths[-1]
        cols = jnp.clip(row_start[:, None] + jnp.arange(width, dtype=jnp.int32)[None, :], 0, m - 1)
        keep = jnp.arange(width, dtype=jnp.int32)[None, :] < row_len[:, None]
        y = jnp.where(keep, values[cols] - shift[row_dataset][:, None], 0)
        s1 = s1 + jax.ops.segment_sum(y.sum(-1), row_dataset, dc + 1)
        s2 = s2 + jax.ops.segment_sum((y * y).sum(-1), row_dataset, dc + 1)
    return lengths.astype(dtype), s1[:dc], s2[:dc], shift


def device_stats(
    flat: Flat,
    dtype: np.dtype,
    widths: np.ndarray,
    chunk_size: int,
    rows: int,
    devices: list[Any],
    bar: Any,
) -> tuple[np.ndarray, ...]:
    """``(n, sum_x, sum_x2, shift)`` of every dataset of ``flat``, in ``dtype``, made on the
    ``devices`` (64-byte aligned host arrays of ``max(D, rows)`` entries, 0 past ``D``).

    Windows of ``capacity`` values: ``chunk_size``, or more when a dataset is longer. Values in
    a wider dtype than ``dtype`` are cast on the host first (one copy)."""
    num = flat.starts.shape[0]
    out = aligned_stats(num, rows, dtype)
    if num == 0:
        return out
    values = flat.values if flat.values.dtype == dtype else flat.values.astype(dtype)
    lengths, starts = flat.lengths, flat.starts
    capacity, per_chunk, spans = device_layout(flat, widths, chunk_size)
    buckets = _buckets(lengths, widths)
    # Static shapes for the whole call: each bucket's rows, the long rows, the window.
    counts = np.zeros((len(spans), len(widths) + 1), np.int64)
    long_rows = np.zeros(len(spans), np.int64)
    wmax = int(widths[-1])
    for k, sl in enumerate(spans):
        counts[k] = np.bincount(buckets[sl], minlength=len(widths) + 1)
        long_rows[k] = int(np.sum(-(-lengths[sl][buckets[sl] == len(widths)] // wmax)))
    caps = tuple(_pow2(max(int(c), 1)) * (c > 0) for c in counts[:, :-1].max(0))
    caps = tuple(max(c, _MIN_ROWS) if c else 0 for c in caps)
    long_cap = _pow2(int(long_rows.max())) if long_rows.max() else 0
    # Datasets per chunk: the most any chunk holds, rounded up (not the bound the chunks were
    # cut with), so that the integers sent beside each window stay few.
    per_chunk = max(_MIN_ROWS, _pow2(max(sl.stop - sl.start for sl in spans)))
    n_out, s1_out, s2_out, shift_out = out
    m = values.shape[0]
    pending = []
    for k, sl in enumerate(spans):
        lo = int(starts[sl.start])
        base = min(lo, max(m - capacity, 0))  # the window ends at the values' end at the latest
        window = values[base : base + capacity]
        if window.shape[0] < capacity:  # fewer values than one window: pad (a small copy)
            window = np.concatenate([window, np.zeros(capacity - window.shape[0], dtype)])
        count = sl.stop - sl.start
        st = np.zeros(per_chunk, np.int32)
        ln = np.zeros(per_chunk, np.int32)
        st[:count] = starts[sl] - base
        ln[:count] = lengths[sl]
        bk = np.full(per_chunk, len(widths) + 1, np.int8)
        bk[:count] = buckets[sl]
        order = np.arange(per_chunk, dtype=np.int32)  # the padding sorts last: it stays put
        order[:count] = np.argsort(bk[:count], kind="stable")  # int8: a radix sort, O(count)
        first = np.concatenate([[0], np.cumsum(counts[k])])[: len(widths)].astype(np.int32)
        cnt = counts[k, : len(widths)].astype(np.int32)
        rs, rd, rl = _long_rows(st, ln, bk, len(widths), wmax, long_cap, per_chunk)
        device = devices[k % len(devices)]
        args = jax.device_put((window, st, ln, order, first, cnt, rs, rd, rl), device)
        res = _chunk_stats(*args, widths=tuple(int(w) for w in widths), caps=caps,
                           long_cap=long_cap)  # fmt: skip
        pending.append((sl, count, res))
        if len(pending) > len(devices):  # one chunk in flight per device
            _store(pending.pop(0), out)
            bar.update()
    for item in pending:
        _store(item, out)
        bar.update()
    shift_out[:num][flat.invalid] = np.nan  # NaN in the dataset's own row only
    del n_out, s1_out, s2_out
    return out


def _long_rows(st, ln, bk, long_bucket, width, cap, per_chunk):
    """Start, dataset and length of each row of the datasets longer than ``width``."""
    rs = np.zeros(cap, np.int32)
    rd = np.full(cap, per_chunk, np.int32)  # padding rows go to the dump slot
    rl = np.zeros(cap, np.int32)
    long = np.flatnonzero(bk == long_bucket)
    if cap and long.size:
        per = -(-ln[long] // width)
        ds = np.repeat(long, per)
        k = np.arange(ds.size) - np.repeat(np.cumsum(per) - per, per)
        rs[: ds.size] = st[ds] + k * width
        rd[: ds.size] = ds
        rl[: ds.size] = np.minimum(ln[ds] - k * width, width)
    return rs, rd, rl


def _store(item: tuple, out: tuple[np.ndarray, ...]) -> None:
    sl, count, res = item
    for dst, src in zip(out, res, strict=True):
        dst[sl] = np.asarray(src)[:count]
