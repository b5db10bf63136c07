"""Kernel study: row sums (Σy, Σy²) over a padded float32 block, as fractions of ``jnp.sum``.

XLA:CPU's reduction emitters are uneven (DESIGN §4), so every candidate formulation is timed
side by side in ONE process, interleaved round-robin so that noise from the shared machine
hits all of them alike, and reported as a fraction of ``jnp.sum`` over the same bytes.

Run::

    /work/venv/bin/python benchmarks/kernel_study.py --rows 2000000 --cols 64 --reps 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import partial

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from jaxvi import solve, suff_stats


def _variadic(y):
    return lax.reduce(
        (y, y * y),
        (jnp.zeros((), y.dtype), jnp.zeros((), y.dtype)),
        lambda a, b: (a[0] + b[0], a[1] + b[1]),
        (1,),
    )


def _two_sums(x, shift):
    # Each sum with its own shift behind an optimization barrier, so that YNNPACK fuses the
    # broadcast subtract into each (suff_stats' full-row path before session 3).
    s1, s2 = lax.optimization_barrier((shift, shift))
    y1 = x - s1[..., None]
    y2 = x - s2[..., None]
    return y1.sum(-1), (y2 * y2).sum(-1)


def _two_sums_blocked(x, shift, rows=8192):
    # _two_sums over blocks of rows small enough (2 MB) to stay in cache while both sums read
    # them; the last block is moved back to end at the last row. Not used in jaxvi: on an
    # array sharded over devices XLA all-gathers it for the dynamic slices.
    d = x.shape[0]
    if d < 2 * rows:
        return _two_sums(x, shift)

    def block(i, acc):
        start = jnp.minimum(i * rows, d - rows)
        part = _two_sums(
            lax.dynamic_slice_in_dim(x, start, rows), lax.dynamic_slice_in_dim(shift, start, rows)
        )
        return tuple(
            lax.dynamic_update_slice_in_dim(a, p, start, 0) for a, p in zip(acc, part, strict=True)
        )

    zeros = jnp.zeros((d,), x.dtype)
    return lax.fori_loop(0, -(-d // rows), block, (zeros, zeros))


def _variadic_split(x, width=16):
    # Each row cut into pieces of `width` values (a free reshape): one two-output reduction
    # over the pieces, then a small one over the (D, L / width) partial sums.
    s, s2 = _variadic(x.reshape(-1, width))
    return s.reshape(x.shape[0], -1).sum(1), s2.reshape(x.shape[0], -1).sum(1)


def _variadic_split_shift(x, c, width=16):
    return _variadic_split(x - c[:, None], width)


def _variadic_split_masked(x, c, n, width=16):
    y = jnp.where(jnp.arange(x.shape[1]) < n[:, None], x - c[:, None], 0)
    return _variadic_split(y, width)


def _variadic_masked(x, n):
    c = x[:, 0]
    y = jnp.where(jnp.arange(x.shape[1]) < n[:, None], x - c[:, None], 0)
    return _variadic(y)


def _variadic_shift(x):
    return _variadic(x - x[:, :1])


def _complex_pack(x, n):
    # (y, y²) packed as one complex64 row sum: one single-output reduction.
    c = x[:, 0]
    y = jnp.where(jnp.arange(x.shape[1]) < n[:, None], x - c[:, None], 0)
    z = lax.complex(y, y * y).sum(1)
    return z.real, z.imag


def _variadic_columns(x, n, piece=8):
    # Masked shifted (y, y²) summed first across pieces of a row (a column reduction over the
    # middle axis of (D, L / piece, piece)), then within the (D, piece) partial sums.
    c = x[:, 0]
    y = jnp.where(jnp.arange(x.shape[1]) < n[:, None], x - c[:, None], 0)
    y = y.reshape(x.shape[0], -1, piece)
    zero = jnp.zeros((), y.dtype)
    s, s2 = lax.reduce((y, y * y), (zero, zero), lambda a, b: (a[0] + b[0], a[1] + b[1]), (1,))
    return s.sum(1), s2.sum(1)


def _halving(x):
    # Row sums as a tree of elementwise adds of column halves: no reduction emitter at all.
    s, s2 = x, x * x
    while s.shape[1] > 1:
        h = s.shape[1] // 2
        s = s[:, :h] + s[:, h:]
        s2 = s2[:, :h] + s2[:, h:]
    return s[:, 0], s2[:, 0]


def candidates(x, lengths, ones):
    """name -> (jitted fn, args). Everything reads the same (D, L) float32 bytes."""
    c = x[:, 0]
    stats = jax.block_until_ready(jax.jit(suff_stats)(x))
    xt = jnp.asarray(x.T)
    mesh = jax.make_mesh((2,), ("d",))
    row_sh = NamedSharding(mesh, PartitionSpec("d", None))
    xs = jax.device_put(x, row_sh)
    ls = jax.device_put(lengths, NamedSharding(mesh, PartitionSpec("d")))

    def solve_full(x):
        return solve(suff_stats(x), exact=False)

    def solve_exact(x):
        return solve(suff_stats(x), exact=True)

    def solve_masked(x, n):
        return solve(suff_stats(x, n), exact=False)

    def solve_masked_exact(x, n):
        return solve(suff_stats(x, n), exact=True)

    return {
        "jnp.sum(x) [roofline]": (jnp.sum, (x,)),
        "jnp.sum(x) sharded x2": (jnp.sum, (xs,)),
        "x.sum(1)": (lambda x: x.sum(1), (x,)),
        "(x-c).sum(1), c arg": (lambda x, c: (x - c[:, None]).sum(1), (x, c)),
        "x.sum(1), (x*x).sum(1)": (lambda x: (x.sum(1), (x * x).sum(1)), (x,)),
        "variadic reduce (x, x*x)": (_variadic, (x,)),
        "variadic over 16-value pieces": (_variadic_split, (x,)),
        "variadic over 32-value pieces": (partial(_variadic_split, width=32), (x,)),
        "variadic over 16-value pieces, shift c arg": (_variadic_split_shift, (x, c)),
        "variadic over 16-value pieces, shift + mask": (_variadic_split_masked, (x, c, lengths)),
        "variadic, shift x[:, 0]": (_variadic_shift, (x,)),
        "variadic, shift x[:, 0] + mask": (_variadic_masked, (x, lengths)),
        "complex64 pack, shift + mask": (_complex_pack, (x, lengths)),
        "variadic over columns of (D, L/8, 8), shift + mask": (_variadic_columns, (x, lengths)),
        "variadic over columns of (D, L/16, 16), shift + mask": (
            partial(_variadic_columns, piece=16),
            (x, lengths),
        ),
        "y=x-x[:,:1]; y.sum, (y*y).sum": (
            lambda x: (lambda y: (y.sum(1), (y * y).sum(1)))(x - x[:, :1]),
            (x,),
        ),
        "x@ones": (lambda x, o: x @ o, (x, ones)),
        "x@ones, (x*x)@ones": (lambda x, o: (x @ o, (x * x) @ o), (x, ones)),
        "x@ones, einsum(dl,dl->d)": (
            lambda x, o: (x @ o, jnp.einsum("dl,dl->d", x, x)),
            (x, ones),
        ),
        "[x, x*x]@ones (concat)": (
            lambda x, o: jnp.concatenate([x, x * x], 1).reshape(-1, 2, x.shape[1]) @ o,
            (x, ones),
        ),
        "barrier: own shift per sum, c arg": (_two_sums, (x, c)),
        "barrier + 2 MB row blocks, c arg": (_two_sums_blocked, (x, c)),
        "halving tree of slices": (_halving, (x,)),
        "reshape (D,4,16) sum(-1).sum(-1) x2": (
            lambda x: (
                x.reshape(x.shape[0], 4, -1).sum(-1).sum(-1),
                (x * x).reshape(x.shape[0], 4, -1).sum(-1).sum(-1),
            ),
            (x,),
        ),
        "columns xT.sum(0), (xT*xT).sum(0)": (lambda t: (t.sum(0), (t * t).sum(0)), (xt,)),
        "sharded x.sum(1), (x*x).sum(1)": (lambda x: (x.sum(1), (x * x).sum(1)), (xs,)),
        "sharded x@ones, (x*x)@ones": (lambda x, o: (x @ o, (x * x) @ o), (xs, ones)),
        "masked where(iota<n).sum x2": (
            lambda x, n: (lambda y: (y.sum(1), (y * y).sum(1)))(
                jnp.where(jnp.arange(x.shape[1]) < n[:, None], x, 0)
            ),
            (x, lengths),
        ),
        "solve(suff_stats(x))": (solve_full, (x,)),
        "solve(suff_stats(x)) exact": (solve_exact, (x,)),
        "solve(stats) tail only": (lambda st: solve(st, exact=False), (stats,)),
        "solve(stats) exact tail only": (lambda st: solve(st, exact=True), (stats,)),
        "solve(suff_stats(x, n))": (solve_masked, (x, lengths)),
        "solve(suff_stats(x, n)) exact": (solve_masked_exact, (x, lengths)),
        "sharded solve(suff_stats(x))": (solve_full, (xs,)),
        "sharded solve(suff_stats(x)) exact": (solve_exact, (xs,)),
        "sharded solve(suff_stats(x, n)) exact": (solve_masked_exact, (xs, ls)),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--cols", type=int, default=64)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--only", default="", help="comma-separated substrings of names to keep")
    args = p.parse_args()
    jax.config.update("jax_num_cpu_devices", 2)  # before the backend starts
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.normal(3.0, 1.0, (args.rows, args.cols)).astype(np.float32))
    lengths = jax.device_put(rng.integers(1, args.cols + 1, args.rows).astype(np.int32))
    ones = jnp.ones((args.cols,), jnp.float32)
    cands = candidates(x, lengths, ones)
    if args.only:
        keep = ["roofline", *args.only.split(",")]
        cands = {k: v for k, v in cands.items() if any(s in k for s in keep)}
    compiled, compile_s = {}, {}
    for name, (fn, a) in cands.items():
        t0 = time.perf_counter()
        compiled[name] = jax.jit(fn).lower(*a).compile()
        compile_s[name] = time.perf_counter() - t0
        jax.block_until_ready(compiled[name](*a))  # warm-up
    times = {k: [] for k in cands}
    for _ in range(args.reps):
        for name, (_, a) in cands.items():
            f = compiled[name]
            t0 = time.perf_counter()
            jax.block_until_ready(f(*a))
            times[name].append(time.perf_counter() - t0)
    nbytes = x.size * x.dtype.itemsize
    roof = statistics.median(times["jnp.sum(x) [roofline]"])
    roof_min = min(times["jnp.sum(x) [roofline]"])
    print(f"# {args.rows} x {args.cols} float32 = {nbytes / 1e9:.3f} GB; jax {jax.__version__}")
    print(f"# devices: {jax.devices()}; nproc {os.cpu_count()}; reps {args.reps}")
    print(
        "| formulation | median ms | min ms | GB/s (min) | fraction of jnp.sum (median) "
        "| fraction (min) | compile s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, ts in times.items():
        med, best = statistics.median(ts), min(ts)
        print(
            f"| {name} | {med * 1e3:.1f} | {best * 1e3:.1f} | {nbytes / best / 1e9:.1f} "
            f"| {roof / med:.2f} | {roof_min / best:.2f} | {compile_s[name]:.2f} |"
        )


if __name__ == "__main__":
    main()
