"""``fit`` runs in memory bounded by ``chunk_size``, not by the size of the input.

Two measures, both taken around one call with the input already built:

* host allocations traced by ``tracemalloc`` (NumPy reports its buffers to it);
* the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``), which
  also holds XLA's CPU device buffers.

The input grows 4x; the peak must not.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import OPTS

from jaxvi import Padded, Ragged, fit

MB = 1 << 20


def ragged_input(scale: int) -> Ragged:
    """1000·scale datasets with a long tail of lengths up to several thousand."""
    rng = np.random.default_rng(scale)
    lengths = np.minimum(rng.pareto(1.2, 1000 * scale) * 60, 6000).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return Ragged(rng.normal(5.0, 1.0, offsets[-1]).astype(np.float32), offsets)


def host_peak(data) -> int:
    tracemalloc.start()
    try:
        fit(data, **OPTS)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def rss_peak_delta(data) -> int:
    """Peak RSS during ``fit`` above the RSS before it, in bytes."""

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = status("VmRSS:")
    fit(data, **OPTS)
    return status("VmHWM:") - before


def test_host_allocations_do_not_grow_with_the_number_of_values():
    # Same datasets, each 4x longer: only the values grow, so must nothing else.
    small = ragged_input(1)
    lengths = np.diff(small.offsets) * 4
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    large = Ragged(np.resize(small.values, offsets[-1]), offsets)
    fit(small, **OPTS)  # compile, so that the measured calls only run
    fit(large, **OPTS)
    peak_small, peak_large = host_peak(small), host_peak(large)
    assert large.values.nbytes > 3 * MB
    # A few blocks of chunk_size values (4 bytes each, int64 gather indices at most 8) plus
    # per-dataset arrays; nowhere near the 4x larger input.
    bound = 16 * 8 * OPTS["chunk_size"] + 400 * len(lengths)
    assert peak_large < bound, (peak_small, peak_large, bound)
    assert peak_large < 1.5 * peak_small + 8 * OPTS["chunk_size"], (peak_small, peak_large)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_peak_resident_memory_stays_flat_as_the_input_grows():
    inputs = [ragged_input(scale) for scale in (1, 4)]
    assert inputs[1].values.nbytes > 3 * inputs[0].values.nbytes
    for data in inputs:
        fit(data, **OPTS)  # compile every shape first
    deltas = [rss_peak_delta(data) for data in inputs]
    # The larger input is ~4x the smaller; a copy of it would add that much.
    assert deltas[1] < deltas[0] + inputs[1].values.nbytes // 4, deltas
    assert deltas[1] < inputs[1].values.nbytes // 2, deltas


def test_padded_input_is_not_copied():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 300)).astype(np.float32)
    lengths = rng.integers(0, 301, 4000)
    fit(Padded(x, lengths), **OPTS)
    assert host_peak(Padded(x, lengths)) < x.nbytes // 2
