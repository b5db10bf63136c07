"""Why ragged ``fit`` cannot reach 10x NumPy and 5x PyTorch on this stack: the routing floor.

Issue 4 asks ragged ``fit`` for 10x the NumPy peer and 5x the PyTorch peer. ``fit`` has to
bring each dataset's values together before it can sum them: values stored back to back must
be *routed* to their dataset. This script times, on the same ragged workload and in one
process (round-robin, so that noise hits all alike), every way JAX, NumPy and PyTorch offer to
get ``Σx`` and ``Σx²`` per dataset from that layout, next to the peers, the budgets the
targets leave (NumPy / 10 and PyTorch / 5), and ``fit`` itself. Each route does less than
``fit``: no shift (float32 needs it, DESIGN trap 6), no validation, no solve, and its index
arrays are made outside the timer.

If even the cheapest route takes longer than a budget, no ``fit`` built from these primitives
meets that target. The routes:

* host raw windows, as ``fit`` copies them: :func:`jaxvi._fit.buckets.gather_block` over every
  bucket, in memory order, in two threads, then ``fit``'s masked sums of each block on the
  device; and the copies alone (a partial route). Datasets longer than 4096 values are left
  out;
* device ``jax.ops.segment_sum`` of ``(x, x²)``, ids sorted;
* device gather of every dataset's window, bucketed as ``fit`` buckets them (widths 8 to
  4096, blocks of 2^22 values), fused into masked sums (XLA fuses the gather into the
  reduction); the values already on the device, and datasets longer than 4096 left out;
* device ``jnp.cumsum`` of ``(x, x²)`` (prefix sums, to be differenced at the offsets);
* device within-row prefix sums of ``(x, x²)`` by a matmul with a triangular matrix, rows
  of 16 (what is left, the rows' own prefix sums, is not timed);
* NumPy ``add.reduceat`` of ``x`` and ``x²`` in float32 (no float64 accumulation: inaccurate);
* PyTorch ``segment_reduce`` of ``x`` and ``x²``.

``jnp.sum`` over the values is one read of every byte, the memory floor.

Run::

    /work/venv/bin/python benchmarks/ragged_floor.py --num-datasets 1000000 --reps 7
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi import Ragged, fit
from jaxvi._fit.blocks import _window_sums
from jaxvi._fit.buckets import Flat, gather_block
from jaxvi._fit.plan import ladder, split_buckets
from jaxvi._model.dtypes import float_dtype
from jaxvi._stats.padded import sum_and_sum_sq
from jaxvi.bench import compiled_thunk, device_summary, ragged_workload, time_round_robin


def window_blocks(offsets: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``fit``'s blocks of one-row datasets: ``(width, starts, lengths)`` per block, buckets
    8 to 4096 wide in input order, at most 2^22 values each. Longer datasets are left out,
    which only helps the routes that use these blocks."""
    lengths = np.diff(offsets)
    widths = ladder(8, 4096)
    buckets, bucket_lengths = split_buckets(lengths, widths, by_length=False)
    blocks = []
    for width, idx, lens in zip(widths, buckets[:-1], bucket_lengths[:-1], strict=True):
        rows = max((1 << 22) // int(width), 8)
        for i in range(0, len(idx), rows):
            starts = offsets[idx[i : i + rows]]
            blocks.append((int(width), starts, lens[i : i + rows].astype(np.int32)))
    return blocks


def host_windows(values: np.ndarray, offsets: np.ndarray, *, sums: bool) -> Callable[[], Any]:
    """Every dataset up to 4096 values copied as ``fit`` copies it (raw windows, memory order,
    :func:`window_blocks`), then summed on the device as ``fit`` sums it when ``sums``."""
    lengths = np.diff(offsets)
    flat = Flat(values, offsets[:-1], lengths, np.zeros(lengths.shape, bool))
    plan = window_blocks(offsets)
    dtype = float_dtype(values)

    def run() -> None:
        out = []
        for width, starts, n in plan:
            block = gather_block(flat, starts, width, starts.shape[0], dtype)
            if sums:
                out.append(_window_sums(block, n))
        jax.block_until_ready(out)

    return run


PARTIAL = "host raw windows alone, as fit copies them (2 threads; partial)"


def device_routes(values: np.ndarray, offsets: np.ndarray) -> dict[str, Callable[[], Any]]:
    num = offsets.shape[0] - 1
    x = jax.device_put(values)
    ids = jax.device_put(np.repeat(np.arange(num, dtype=np.int32), np.diff(offsets)))
    m16 = values.shape[0] // 16 * 16
    tri = jnp.triu(jnp.ones((16, 16), x.dtype))

    gathers = device_window_blocks(x, offsets)

    def row_prefix(x):
        rows = x[:m16].reshape(-1, 16)
        return rows @ tri, (rows * rows) @ tri

    routes = {
        "jnp.sum of the values (one read: the memory floor)": (jnp.sum, x),
        "device segment_sum of (x, x²)": (
            lambda x, i: jax.ops.segment_sum(
                jnp.stack([x, x * x], -1), i, num, indices_are_sorted=True
            ),
            x,
            ids,
        ),
        "device cumsum of (x, x²)": (lambda x: jnp.cumsum(jnp.stack([x, x * x], -1), 0), x),
        "device row prefix sums of (x, x²) by matmul, rows of 16": (row_prefix, x),
    }
    out = {name: compiled_thunk(fn, *args)[0] for name, (fn, *args) in routes.items()}
    out["device gather of bucketed windows + masked sums"] = gathers
    return out


@partial(jax.jit, static_argnames="width")
def _gathered_sums(x: jax.Array, s: jax.Array, n: jax.Array, *, width: int):
    iota = jnp.arange(width, dtype=s.dtype)
    y = x[jnp.minimum(s[:, None] + iota, x.shape[0] - 1)]
    return sum_and_sum_sq(jnp.where(iota < n[:, None], y, 0))


def device_window_blocks(x: jax.Array, offsets: np.ndarray) -> Callable[[], Any]:
    """Every dataset up to 4096 values gathered on the device from its start, in ``fit``'s
    blocks (:func:`window_blocks`, rows padded to a power of two), into masked sums; the index
    arrays are made here, outside the timer."""
    blocks = []
    for width, starts, lens in window_blocks(offsets):
        size = 1 << max(3, (starts.shape[0] - 1).bit_length())
        s = np.zeros(size, np.int32)
        n = np.zeros(size, np.int32)
        s[: starts.shape[0]] = starts
        n[: starts.shape[0]] = lens
        blocks.append((width, jax.device_put(s), jax.device_put(n)))

    def run() -> None:
        jax.block_until_ready([_gathered_sums(x, s, n, width=w) for w, s, n in blocks])

    run()  # compile every block shape
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-datasets", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()
    values, offsets = ragged_workload(args.num_datasets)
    data = Ragged(values, offsets)
    starts = offsets[:-1][np.diff(offsets) > 0]
    fns: dict[str, Callable[[], Any]] = {
        "jaxvi fit (validation on, exact)": lambda: fit(data),
    }
    fns.update(device_routes(values, offsets))
    fns["host raw windows + device masked sums (fit's reduction)"] = host_windows(
        values, offsets, sums=True
    )
    fns[PARTIAL] = host_windows(values, offsets, sums=False)
    fns["NumPy add.reduceat of x and x², float32"] = lambda: (
        np.add.reduceat(values, starts),
        np.add.reduceat(values * values, starts),
    )
    from jaxvi._tools.peers import numpy_reduceat, torch_segment_reduce

    peers = {"NumPy peer (reduceat, float64)": lambda: numpy_reduceat(values, offsets)}
    if importlib.util.find_spec("torch"):
        import torch

        xt, lt = torch.from_numpy(values), torch.from_numpy(np.diff(offsets))
        fns["PyTorch segment_reduce of x and x²"] = lambda: (
            torch.segment_reduce(xt, "sum", lengths=lt, unsafe=True),
            torch.segment_reduce(xt * xt, "sum", lengths=lt, unsafe=True),
        )
        peers["PyTorch peer (segment_reduce)"] = lambda: torch_segment_reduce(values, offsets)
    fns.update(peers)
    for fn in fns.values():  # warm-up (fit compiles here)
        fn()
    times = {k: statistics.median(v) for k, v in time_round_robin(fns, args.reps).items()}
    budgets = {"NumPy peer (reduceat, float64)": 10, "PyTorch peer (segment_reduce)": 5}
    print(f"# {device_summary()}; jax {jax.__version__}")
    print(
        f"# {args.num_datasets:,} datasets, {values.shape[0]:,} values "
        f"({values.nbytes / 1e6:.0f} MB float32); median of {args.reps}, round-robin"
    )
    print("| what | median ms | ns per value |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t * 1e3:.1f} | {t * 1e9 / values.shape[0]:.2f} |")
    routes = {
        k: t
        for k, t in times.items()
        if not k.startswith(("jaxvi", "jnp.sum")) and k not in peers and k != PARTIAL
    }
    best = min(routes, key=routes.get)
    print(f"\ncheapest complete route: {best}, {routes[best] * 1e3:.1f} ms")
    for peer, factor in budgets.items():
        if peer not in times:
            continue
        budget = times[peer] / factor
        print(
            f"{factor}x {peer}: budget {budget * 1e3:.1f} ms. The cheapest complete route is "
            f"{routes[best] / budget:.2f}x the budget, the copies alone "
            f"{times[PARTIAL] / budget:.2f}x; fit is at "
            f"{times[peer] / times['jaxvi fit (validation on, exact)']:.2f}x the peer"
        )


if __name__ == "__main__":
    main()
