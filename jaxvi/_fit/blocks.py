"""``fit``'s XLA engine: length buckets of padded blocks, reduced on the devices.

The path of accelerators (and of ``fit(..., engine="xla")`` anywhere). Datasets are bucketed by
length on a geometric ladder; each chunk of a bucket is copied on the host into a block of raw
windows (or, for data wider than the compute dtype and for long datasets, of shifted
zero-padded rows; see :mod:`jaxvi._fit.buckets`), and each block is reduced on the devices:
masked, shifted row sums of raw windows (XLA's path of :func:`~jaxvi.suff_stats`, not the
native call, whose output would not stay sharded), plain row sums of shifted rows. At most two
blocks are alive at a time: memory is bounded by ``chunk_size``, not by the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import jax
import numpy as np

from jaxvi._fit.aligned import aligned_stats, rows_for
from jaxvi._fit.buckets import Flat, build_block, gather_block, work_dtype
from jaxvi._fit.devices import Devices, Job, run_jobs
from jaxvi._fit.plan import ChunkPlan, chunks
from jaxvi._stats.padded import suff_stats_xla, sum_and_sum_sq

__all__ = ["raw_windows", "reduce_blocks"]


@jax.jit
def _row_sums(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(Σ_j y_ij, Σ_j y_ij²)`` of a ``(rows, width)`` block, ``(rows,)`` each.

    ``y`` is shifted and zero-padded on the host: plain row sums, no mask (DESIGN §4). Rows of
    at most ``_VARIADIC_WIDTH`` values take one two-output reduction, wider rows two plain
    ones. On XLA:CPU (jax 0.10.2, 16 MB blocks) the two-output form reaches 0.68 / 0.84 / 0.89
    of ``jnp.sum`` at widths 8 / 16 / 32 against 0.19 / 0.34 / 0.57 for two sums, and 0.37
    against 0.61 at width 64; in ``fit`` of 10⁶ ragged datasets the row sums went from 29 to
    20 ms. Measure with ``benchmarks/kernel_study.py --rows 262144 --cols 16
    --only 'variadic,(x*x).sum'``. Either form is one kernel on an accelerator.
    """
    if y.shape[1] <= _VARIADIC_WIDTH:
        return sum_and_sum_sq(y)
    return y.sum(1), (y * y).sum(1)


_VARIADIC_WIDTH = 32


@jax.jit
def _window_sums(x: jax.Array, n: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shifted sums of a block of raw windows (:func:`~jaxvi._fit.buckets.gather_block`),
    ``(rows,)`` each: ``suff_stats(x, n)``, which shifts by each row's first value and masks the
    slots past ``n`` in one pass (:func:`~jaxvi._stats.padded.sum_and_sum_sq`)."""
    st = suff_stats_xla(x, n)
    return st.sum_x, st.sum_x2


def _sum_jobs(
    flat: Flat,
    rows: Callable[[slice], tuple[np.ndarray, ...]],
    count: int,
    width: int,
    sizes: list[int],
    store: Callable[[np.ndarray, tuple[np.ndarray, np.ndarray]], None],
    dtype: np.dtype,
    *,
    raw: bool = False,
) -> Iterator[Job]:
    """Row sums at ``width`` of ``count`` rows; ``rows(slice)`` gives
    ``(key, starts, lengths, shifts)`` of a chunk and ``store(key, sums)`` keeps its sums.

    ``raw``: blocks of raw windows, shifted and masked on the device (:func:`_window_sums`;
    datasets that fit one row, shifts unused). Otherwise shifted, zero-padded rows summed
    plainly (:func:`_row_sums`)."""
    for size, sl in chunks(sizes, count):
        key, starts, lengths, shifts = rows(sl)
        if raw:
            x = gather_block(flat, starts, width, size, dtype)
            n = rows_for(lengths, slice(0, lengths.shape[0]), size, 0, np.dtype(np.int32))
            yield _window_sums, (x, n), partial(_store_sums, store, key)
        else:
            y = build_block(flat, starts, lengths, shifts, width, size, dtype)
            yield _row_sums, (y,), partial(_store_sums, store, key)


def _store_sums(store, key, res) -> None:
    k = key.shape[0]
    store(key, (res[0][:k], res[1][:k]))


def raw_windows(flat: Flat, dtype: np.dtype) -> bool:
    """Whether the datasets that fit one row go to the device as raw windows, shifted there.

    Only when the data are already in the compute dtype: float64 or integer data computed in
    float32 are shifted on the host in float64 first, so that the spread survives a large
    common offset (:func:`~jaxvi._fit.buckets.build_block`)."""
    return flat.values.dtype == dtype


def reduce_blocks(
    flat: Flat,
    dtype: np.dtype,
    widths: np.ndarray,
    plan: ChunkPlan,
    dev: Devices,
    bar: Any,
    raw: bool,
) -> tuple[np.ndarray, ...]:
    """Shifted statistics ``(n, sum_x, sum_x2, shift)`` of every dataset.

    Each is 64-byte aligned and holds ``max(D, sum(plan.solve_sizes))`` rows, zero past
    ``D``: the solve's chunks are then views of them (:func:`_rows`), not copies."""
    num = flat.starts.shape[0]
    n, sum_x, sum_x2, shift = padded = aligned_stats(num, sum(plan.solve_sizes), dtype)
    # Round the shift to the compute dtype first, so that the device's n·shift matches the
    # shift subtracted on the host; subtract in float64 when the data are float64 or integer.
    with np.errstate(all="ignore"):
        shift[:num] = flat.shifts()
    shift[:num][flat.invalid] = np.nan  # NaN in the dataset's own row only (validate=False)
    n[:num] = flat.lengths
    sums = (sum_x[:num], sum_x2[:num])
    sums[0][:] = 0
    sums[1][:] = 0

    def assign(idx, part):
        sums[0][idx], sums[1][idx] = part

    jobs = []
    for width, idx, lengths, size in zip(
        widths, plan.buckets, plan.bucket_lengths, plan.bucket_sizes, strict=True
    ):

        def bucket_rows(sl, idx=idx, lengths=lengths):
            # Each dataset fits one row: its shift is the row's first value (build_block).
            sel = idx[sl]
            return sel, flat.starts[sel], lengths[sl], None

        jobs.append(
            _sum_jobs(flat, bucket_rows, len(idx), int(width), size, assign, dtype, raw=raw)
        )

    long = plan.long
    long_idx = plan.long_idx
    # The rows of one dataset share its shift, so their partial sums simply add (in float64).
    long_sums = (np.zeros(long_idx.shape[0]), np.zeros(long_idx.shape[0]))

    long_shift = shift[long_idx].astype(work_dtype(flat.values.dtype))

    def long_rows(sl):
        dataset, starts, lengths = long.rows(sl)
        return dataset, starts, lengths, long_shift[dataset]

    def accumulate(dataset, part):
        # inf + (−inf) is NaN in the dataset's own row, as on the device: no warning.
        with np.errstate(invalid="ignore", over="ignore"):
            for dst, src in zip(long_sums, part, strict=True):
                np.add.at(dst, dataset, src)

    jobs.append(
        _sum_jobs(flat, long_rows, long.num_rows, long.width, plan.long_sizes, accumulate, dtype)
    )
    run_jobs((job for it in jobs for job in it), dev, bar)
    for dst, src in zip(sums, long_sums, strict=True):
        dst[long_idx] = src
    return padded
