"""The host's share of ``fit``'s device engine: what it costs per dataset before any device.

The device engine's kernel (``device_stats._chunk_stats``) is replaced by one that returns
zeros, and ``jax.device_put`` by the identity, so that what remains is the host's integer
bookkeeping (buckets, each chunk's order, the long rows) and the results' stores. Beside it:
the whole ``device_stats`` with its kernel and transfers, and the native kernel's statistics
(the CPU default) on the same layout. Median of ``--reps``.

Run::

    python benchmarks/device_host_work.py --num-datasets 1000000 --reps 7
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import jax
import numpy as np

import jaxvi._fit.device_stats as ds
from jaxvi import Ragged
from jaxvi._fit.buckets import Flat
from jaxvi._fit.native_stats import native_stats
from jaxvi._fit.plan import ladder
from jaxvi._fit.validate import as_flat_or_stats
from jaxvi._progress import NoBar
from jaxvi._tools.bench import device_summary, ragged_workload, time_round_robin


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm: compile, first transfers
    return 1e3 * statistics.median(time_round_robin({"fn": fn}, reps)["fn"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--num-datasets", type=int, default=1_000_000)
    p.add_argument("--chunk-size", type=int, default=1 << 22)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()
    values, offsets = ragged_workload(args.num_datasets)
    flat = as_flat_or_stats(Ragged(values, offsets), validate=True)
    assert isinstance(flat, Flat)
    widths, dt, num = ladder(8, 4096), np.dtype(np.float32), args.num_datasets
    bar, devices = NoBar(), jax.local_devices()

    def device() -> object:
        return ds.device_stats(flat, dt, widths, args.chunk_size, num, devices, bar)

    rows = [
        ("device engine, whole (kernel and transfers included)", _median_ms(device, args.reps)),
        ("native statistics (the CPU default)",
         _median_ms(lambda: native_stats(flat, dt, args.chunk_size, num, bar), args.reps)),
    ]  # fmt: skip
    kernel, put = ds._chunk_stats, ds.jax.device_put
    zeros = lambda *a, **k: (np.zeros(a[1].shape[0], dt),) * 4
    try:
        ds._chunk_stats, ds.jax.device_put = zeros, lambda x, *a, **k: x
        rows.insert(0, ("device engine, host bookkeeping only", _median_ms(device, args.reps)))
    finally:
        ds._chunk_stats, ds.jax.device_put = kernel, put
    chunks = len(ds.device_layout(flat, widths, args.chunk_size)[2])
    print(f"# {device_summary()}; jax {jax.__version__}")
    print(f"# {num:,} datasets, {values.shape[0]:,} points, {chunks} chunks of the device engine")
    print("| what | ms per call | ns per dataset |")
    print("|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {ms * 1e6 / num:.1f} |")


if __name__ == "__main__":
    main()
