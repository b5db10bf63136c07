"""Where the time of ``fit(Ragged(values, offsets))`` goes: a breakdown by stage.

Each stage of :func:`jaxvi.fit` is wrapped with a timer (validation and host layout, bucketing,
building the padded blocks, transfer to the device, the row-sum and solve kernels, the copy
back). Kernels are made to block inside their wrapper so that their time is theirs; that
serialises fit's overlap of host and device work, so the stages add up to more than an
unwrapped call, which is timed too. Compile time is the first call minus a later one.

Run::

    /work/venv/bin/python benchmarks/profile_fit.py --num-datasets 1000000 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import jax

from jaxvi import Ragged, _batch, _buckets, fit
from jaxvi._bench import device_summary, fit_timings, ragged_workload

TIMES: dict[str, float] = defaultdict(float)


def _timed(name: str, fn: Callable, *, block: bool = False) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        if block:
            out = jax.block_until_ready(out)
        TIMES[name] += time.perf_counter() - t0
        return out

    return wrapper


def _instrument() -> None:
    _batch.as_flat_or_stats = _timed("validation + host layout", _batch.as_flat_or_stats)
    _buckets.ChunkPlan.bucket = _timed("bucketing (counting sort)", _buckets.ChunkPlan.bucket)
    _batch.build_block = _timed("host: build padded shifted blocks", _batch.build_block)
    _batch._Devices.put = _timed("transfer host -> device", _batch._Devices.put, block=True)
    _batch._Devices.fetch = _timed("transfer device -> host", _batch._Devices.fetch)
    _batch._row_sums = _timed("kernel: row sums", _batch._row_sums, block=True)
    _batch._solve_stats = _timed("kernel: solve", _batch._solve_stats, block=True)
    _batch._reduce = _timed("(all of the reduction stage)", _batch._reduce)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--num-datasets", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--exact", action="store_true")
    args = p.parse_args()
    values, offsets = ragged_workload(args.num_datasets)
    data = Ragged(values, offsets)
    first, plain = fit_timings(data, exact=args.exact, reps=args.reps)
    _instrument()
    TIMES.clear()
    t0 = time.perf_counter()
    for _ in range(args.reps):
        fit(data, exact=args.exact)
    staged = (time.perf_counter() - t0) / args.reps
    run = statistics.median(plain)
    print(f"# {device_summary()}; jax {jax.__version__}")
    print(
        f"# {args.num_datasets:,} datasets, {values.shape[0]:,} points "
        f"({values.nbytes / 1e6:.0f} MB float32), exact={args.exact}"
    )
    print("| stage | seconds per call | share of the staged call |")
    print("|---|---|---|")
    print(f"| compile (first call {first:.2f} s minus a later one) | {first - run:.3f} | |")
    for name, total in TIMES.items():
        print(f"| {name} | {total / args.reps:.3f} | {total / args.reps / staged:.0%} |")
    print(f"| staged call (stages serialised) | {staged:.3f} | 100% |")
    print(f"| plain call (median of {args.reps}) | {run:.3f} | |")
    print(f"| datasets/s (plain call) | {args.num_datasets / run:,.0f} | |")


if __name__ == "__main__":
    main()
