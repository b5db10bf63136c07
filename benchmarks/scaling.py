"""``fit`` time against total points, 10⁵ to 10⁷ ragged datasets: the log-log slope.

Each size is warmed up once (compiling its block shapes), then timed ``--reps`` times; the
slope of log(median time) against log(points) is fitted by least squares. Issue 4's target is
0.9–1.1 (linear). Peak memory against input size is measured by
``benchmarks/measure_fit_memory.py``.

Run::

    /work/venv/bin/python benchmarks/scaling.py --sizes 100000,1000000,10000000 --reps 2
"""

from __future__ import annotations

import argparse
import statistics

import jax
import numpy as np

from jaxvi import Ragged
from jaxvi._tools.bench import device_summary, fit_timings, ragged_workload


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="100000,1000000,10000000")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--exact", action="store_true")
    args = p.parse_args()
    print(f"# {device_summary()}; jax {jax.__version__}; exact={args.exact}")
    print("| datasets | points | first call s | median s | datasets/s | points/s |")
    print("|---|---|---|---|---|---|")
    points, seconds = [], []
    for size in (int(s) for s in args.sizes.split(",")):
        values, offsets = ragged_workload(size)
        data = Ragged(values, offsets)
        first, times = fit_timings(data, exact=args.exact, reps=args.reps)
        med = statistics.median(times)
        points.append(values.shape[0])
        seconds.append(med)
        print(
            f"| {size:,} | {values.shape[0]:,} | {first:.2f} | {med:.3f} | {size / med:,.0f} "
            f"| {values.shape[0] / med:,.0f} |"
        )
        del values, offsets, data
    slope = np.polyfit(np.log(points), np.log(seconds), 1)[0]
    print(f"log-log slope of time against points: {slope:.3f}")


if __name__ == "__main__":
    main()
