"""Where the padded kernel's time goes: the statistics and the solve's tail, alone and together.

Issue 12's padded targets compare ``jit(lambda x, n: solve(suff_stats(x, n)))`` on a
``(D, W)`` float32 block with ``jnp.sum`` over the same block. This script times, side by side
and round-robin on device-resident arrays:

* ``jnp.sum`` over the block (the roofline proxy);
* ``suff_stats(x, lengths)`` alone (on CPU: the native kernel);
* ``solve`` alone on its ``(D,)`` statistics, without and with the exact side;
* the two together under one ``jit``, without and with the exact side.

If the statistics alone take longer than ``jnp.sum`` divided by a target fraction, no tail can
reach it; the tail's own time is what is left to win. Run::

    python benchmarks/padded_parts.py --rows 2000000 --cols 64 --reps 9
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi import bench, solve, suff_stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--cols", type=int, default=64)
    p.add_argument("--reps", type=int, default=9)
    args = p.parse_args()
    x = bench.padded_workload(args.rows, args.cols)
    n = jnp.full(args.rows, args.cols, jnp.int32)
    stats = jax.block_until_ready(jax.jit(suff_stats)(x, n))
    parts = {
        "jnp.sum (roofline)": (jnp.sum, x),
        "suff_stats(x, lengths)": (suff_stats, x, n),
        "solve tail": (lambda s: solve(s, exact=False), stats),
        "solve tail, exact": (lambda s: solve(s, exact=True), stats),
        "solve(suff_stats(x, lengths))": (lambda x, n: solve(suff_stats(x, n), exact=False), x, n),
        "… + exact log p, KL": (lambda x, n: solve(suff_stats(x, n), exact=True), x, n),
    }
    thunks = {name: bench.compiled_thunk(fn, *fn_args)[0] for name, (fn, *fn_args) in parts.items()}
    times = bench.time_round_robin(thunks, args.reps)
    print(
        f"# ({args.rows:,}, {args.cols}) float32, {x.nbytes / 2**20:.0f} MiB; "
        f"{bench.device_summary()}, jax {jax.__version__}; median of {args.reps} round-robin runs"
    )
    print("| part | ms | fraction of jnp.sum |")
    print("|---|---|---|")
    roof = float(np.median(times["jnp.sum (roofline)"]))
    for name, ts in times.items():
        med = float(np.median(ts))
        print(f"| {name} | {med * 1e3:.1f} | {roof / med:.2f} |")


if __name__ == "__main__":
    main()
