"""The host layout of ``fit``: buckets, raw windows, padded shifted blocks, aligned buffers."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvi._fit.aligned import aligned_empty
from jaxvi._fit.buckets import _SPLIT_VALUES, Flat, build_block, gather_block
from jaxvi._fit.plan import ladder, split_buckets


@pytest.mark.parametrize("by_length", [True, False])
@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 70), min_size=0, max_size=200),
    max_exp=st.integers(0, 6),
)
def test_buckets_hold_every_dataset_once_in_length_or_input_order(lengths, max_exp, by_length):
    lengths = np.array(lengths, np.int64)
    widths = ladder(1, 1 << max_exp)
    buckets, bucket_lengths = split_buckets(lengths, widths, by_length=by_length)
    assert len(buckets) == len(widths) + 1
    placed = np.concatenate(buckets) if buckets else np.zeros(0, np.int64)
    np.testing.assert_array_equal(np.sort(placed), np.flatnonzero(lengths > 0))
    lower = np.concatenate([[0], widths])
    for i, idx in enumerate(buckets):
        got = lengths[idx]
        np.testing.assert_array_equal(bucket_lengths[i], np.minimum(got, widths[-1] + 1))
        assert (got > lower[i]).all()
        if i < len(widths):
            assert (got <= widths[i]).all()
        if i < len(widths) and by_length:
            # Sorted by length, in input order among equal lengths (a stable sort).
            assert np.all(np.lexsort((idx, got)) == np.arange(idx.size))
        else:  # the datasets cut into rows, or every bucket when not by length: input order
            assert np.all(np.diff(idx) > 0)


def _reference(values, starts, lengths, shifts, width, rows):
    out = np.zeros((rows, width), np.float64)
    for i, (s, n, c) in enumerate(zip(starts, lengths, shifts, strict=True)):
        out[i, :n] = values[s : s + n].astype(np.float64) - c
    return out.astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    count=st.integers(1, 40),
    width=st.sampled_from([1, 4, 8, 16]),
    extra_rows=st.integers(0, 5),
    sort=st.booleans(),
    own_shift=st.booleans(),
)
def test_blocks_hold_shifted_values_and_zero_padding_whatever_lies_around(
    seed, count, width, extra_rows, sort, own_shift
):
    _check_block(seed, count, width, extra_rows, sort, own_shift)


@pytest.mark.parametrize("sort", [True, False])
def test_large_blocks_built_by_two_threads_are_the_same(sort):
    # Above _SPLIT_VALUES a worker thread builds the second half of the rows.
    count, width = 2 * _SPLIT_VALUES // 16 + 3, 16
    _check_block(7, count, width, 9, sort, own_shift=True)


def _check_block(seed, count, width, extra_rows, sort, own_shift=False):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, width + 1, count)
    if sort:
        lengths = np.sort(lengths)
    # Datasets separated by NaN/inf garbage; the last one ends exactly at the end of the values,
    # so its window of `width` runs past the end.
    gaps = rng.integers(0, 3, count)
    starts = np.cumsum(np.concatenate([[0], (lengths + gaps)[:-1]])) + gaps[0]
    values = np.full(int(starts[-1] + lengths[-1]), np.nan, np.float32)
    values[rng.random(values.size) < 0.3] = np.inf
    for s, n in zip(starts, lengths, strict=True):
        values[s : s + n] = rng.normal(1e3, 1, n)
    first = values.take(starts, mode="clip") if values.size else np.zeros(count, np.float32)
    shifts = np.where(lengths > 0, first, 0).astype(np.float64)
    flat = Flat(values, starts, lengths, np.zeros(count, bool))
    rows = count + extra_rows
    # own_shift: each row's first value (fit's one-row datasets), as the caller would pass it.
    given = None if own_shift else shifts
    block = build_block(flat, starts, lengths, given, width, rows, np.dtype(np.float32))
    assert block.shape == (rows, width) and block.dtype == np.float32
    np.testing.assert_array_equal(block, _reference(values, starts, lengths, shifts, width, rows))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    count=st.integers(1, 40),
    width=st.sampled_from([1, 4, 8, 16]),
    extra_rows=st.integers(0, 5),
    size=st.integers(0, 30),
)
def test_raw_windows_are_the_values_clipped_at_both_ends(seed, count, width, extra_rows, size):
    """gather_block row i is values[start:start + width] (the dataset and whatever follows it),
    clipped to the values at either end; the rows past the datasets are zero."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, size).astype(np.float32)
    values[rng.random(size) < 0.2] = np.nan
    starts = rng.integers(-2, size + 2, count)
    flat = Flat(values, starts, np.zeros(count, np.int64), np.zeros(count, bool))
    block = gather_block(flat, starts, width, count + extra_rows, np.dtype(np.float32))
    assert block.shape == (count + extra_rows, width) and block.ctypes.data % 64 == 0
    want = np.zeros((count + extra_rows, width), np.float32)
    if size:
        want[:count] = values[np.clip(starts[:, None] + np.arange(width), 0, size - 1)]
    np.testing.assert_array_equal(block, want)


def test_large_raw_blocks_built_by_two_threads_are_the_same():
    count, width = 2 * _SPLIT_VALUES // 16 + 3, 16
    values = np.arange(count * 20, dtype=np.float32)
    starts = np.random.default_rng(0).integers(0, values.size - width, count)
    flat = Flat(values, starts, np.zeros(count, np.int64), np.zeros(count, bool))
    block = gather_block(flat, starts, width, count + 5, np.dtype(np.float32))
    np.testing.assert_array_equal(block[:count], values[starts[:, None] + np.arange(width)])
    assert not block[count:].any()


def test_aligned_buffers_reach_the_cpu_device_without_a_copy():
    # A 64-byte aligned host array is adopted by the CPU backend as it is: the transfer that
    # costs ~1 GB/s for a plain NumPy array disappears from fit's blocks and solve inputs.
    a = aligned_empty((1000, 8), np.float32)
    a[:] = 1.5
    assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous
    on_device = jax.device_put(a, jax.devices("cpu")[0])
    assert on_device.unsafe_buffer_pointer() == a.ctypes.data
    np.testing.assert_array_equal(np.asarray(on_device), a)
