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

import jax
from fit_stages import timed_stages

from jaxvi import Ragged, fit
from jaxvi._tools.bench import device_summary, fit_timings, ragged_workload


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--num-datasets", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--exact", action="store_true")
    p.add_argument("--engine", default="auto", choices=("auto", "native", "device", "xla"))
    args = p.parse_args()
    values, offsets = ragged_workload(args.num_datasets)
    data = Ragged(values, offsets)
    first, plain = fit_timings(data, exact=args.exact, reps=args.reps, engine=args.engine)
    times: dict[str, float] = {}
    with timed_stages(times):
        t0 = time.perf_counter()
        for _ in range(args.reps):
            fit(data, exact=args.exact, engine=args.engine)
        staged = (time.perf_counter() - t0) / args.reps
    run = statistics.median(plain)
    print(f"# {device_summary()}; jax {jax.__version__}")
    print(
        f"# {args.num_datasets:,} datasets, {values.shape[0]:,} points "
        f"({values.nbytes / 1e6:.0f} MB float32), exact={args.exact}, engine={args.engine}"
    )
    print("| stage | seconds per call | share of the staged call |")
    print("|---|---|---|")
    print(f"| compile (first call {first:.2f} s minus a later one) | {first - run:.3f} | |")
    for name, total in times.items():
        print(f"| {name} | {total / args.reps:.3f} | {total / args.reps / staged:.0%} |")
    print(f"| staged call (stages serialised) | {staged:.3f} | 100% |")
    print(f"| plain call (median of {args.reps}) | {run:.3f} | |")
    print(f"| datasets/s (plain call) | {args.num_datasets / run:,.0f} | |")


if __name__ == "__main__":
    main()
