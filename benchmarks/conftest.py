"""Shared fixtures of the benchmark suites (pytest-benchmark).

Sizes scale with ``JAXVI_BENCH_SCALE`` (default 1: the sizes of issue 4). ``tests/
test_benchmarks.py`` runs every suite once at a tiny scale with ``--benchmark-disable``.

Each benchmark compiles in one warm-up call, records the compile time in ``extra_info``, then
times calls that end in ``block_until_ready``. ``extra_info`` carries datasets/s, useful GB/s,
the fraction of the roofline proxy (``jnp.sum`` over the same bytes, timed in the same test)
and the device name.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvi._tools.bench import compiled_thunk as compile_and_warm  # noqa: F401 (for the suites)
from jaxvi._tools.bench import device_summary, padded_workload, ragged_workload

SCALE = float(os.environ.get("JAXVI_BENCH_SCALE", "1"))
ROUNDS = int(os.environ.get("JAXVI_BENCH_ROUNDS", "5"))


def scaled(n: float) -> int:
    """``n`` times the scale, at least 16."""
    return max(int(n * SCALE), 16)


@pytest.fixture(scope="session")
def padded_x() -> jax.Array:
    """Device-resident float32 ``(2·10⁶, 64)`` padded block (scaled)."""
    return padded_workload(scaled(2_000_000), 64)


@pytest.fixture(scope="session")
def ragged() -> tuple[np.ndarray, np.ndarray]:
    """Host NumPy ragged datasets: 10⁶ (scaled), mixed lengths with a long tail."""
    return ragged_workload(scaled(1_000_000))


def median_time(fn: Callable[[], Any], reps: int = 5) -> float:
    """Median wall time of ``fn()`` (which must block until its result is ready)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def roofline_seconds(nbytes: int) -> float:
    """Time of ``jnp.sum`` over ``nbytes`` of device-resident float32, measured now."""
    x = jax.device_put(np.ones(max(nbytes // 4, 1), np.float32))
    f = jax.jit(jnp.sum).lower(x).compile()
    jax.block_until_ready(f(x))
    return median_time(lambda: jax.block_until_ready(f(x)))


def run_benchmark(
    benchmark: Any,
    fn: Callable[[], Any],
    *,
    num_datasets: int,
    nbytes: int,
    compile_seconds: float,
    roofline: float | None = None,
    **extra: Any,
) -> Any:
    """Time ``fn`` (already warmed up) and fill ``extra_info``; returns ``fn``'s last result."""
    out = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    stats = getattr(benchmark, "stats", None)
    seconds = stats.stats.median if stats is not None else median_time(fn, 1)
    roof = roofline_seconds(nbytes) if roofline is None else roofline
    benchmark.extra_info.update(
        device=device_summary(),
        compile_s=round(compile_seconds, 4),
        datasets_per_s=num_datasets / seconds,
        useful_gb_per_s=nbytes / seconds / 1e9,
        roofline_fraction=roof / seconds,
        roofline_s=roof,
        **extra,
    )
    return out
