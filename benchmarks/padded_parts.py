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
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi import solve, suff_stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--cols", type=int, default=64)
    p.add_argument("--reps", type=int, default=9)
    args = p.parse_args()
    rows, cols = args.rows, args.cols
    x = jax.device_put(np.random.default_rng(0).normal(size=(rows, cols)).astype(np.float32))
    n = jnp.full(rows, cols, jnp.int32)
    stats = jax.block_until_ready(jax.jit(suff_stats)(x, n))
    parts = {
        "jnp.sum (roofline)": (jax.jit(jnp.sum), (x,)),
        "suff_stats(x, lengths)": (jax.jit(suff_stats), (x, n)),
        "solve tail": (jax.jit(lambda s: solve(s, exact=False)), (stats,)),
        "solve tail, exact": (jax.jit(lambda s: solve(s, exact=True)), (stats,)),
        "solve(suff_stats(x, lengths))": (
            jax.jit(lambda x, n: solve(suff_stats(x, n), exact=False)),
            (x, n),
        ),
        "… + exact log p, KL": (jax.jit(lambda x, n: solve(suff_stats(x, n), exact=True)), (x, n)),
    }
    for fn, fn_args in parts.values():  # compile and warm
        jax.block_until_ready(fn(*fn_args))
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(args.reps):
        for name, (fn, fn_args) in parts.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*fn_args))
            times[name].append(time.perf_counter() - t0)
    device = jax.devices()[0]
    print(
        f"# ({rows:,}, {cols}) float32, {x.nbytes / 2**20:.0f} MiB; {device.platform} "
        f"({platform.processor() or platform.machine()}), jax {jax.__version__}; median of "
        f"{args.reps} round-robin runs"
    )
    print("| part | ms | fraction of jnp.sum |")
    print("|---|---|---|")
    roof = float(np.median(times["jnp.sum (roofline)"]))
    for name, ts in times.items():
        med = float(np.median(ts))
        print(f"| {name} | {med * 1e3:.1f} | {roof / med:.2f} |")


if __name__ == "__main__":
    main()
