"""Benchmarking jaxvi on your device: the workloads, timer and report behind ``jaxvi bench``.

Public so that notebooks and scripts can time kernels the way ``jaxvi bench`` does: compiled
apart, warmed up, ``block_until_ready`` inside the timed call, contenders taken round-robin,
and every throughput set against ``jnp.sum`` over the same bytes (the roofline proxy).

Examples:
    >>> import jax.numpy as jnp
    >>> from jaxvi import bench, solve, suff_stats
    >>> x = bench.padded_workload(1000, 8)
    >>> thunks = {
    ...     "jnp.sum": bench.compiled_thunk(jnp.sum, x)[0],
    ...     "solve": bench.compiled_thunk(lambda x: solve(suff_stats(x), exact=False), x)[0],
    ... }
    >>> times = bench.time_round_robin(thunks, reps=3)
    >>> sorted(times), len(times["solve"])
    (['jnp.sum', 'solve'], 3)
"""

from jaxvi._tools.bench import (
    BenchReport,
    BenchRow,
    compiled_thunk,
    device_summary,
    nominal_bandwidth,
    padded_workload,
    ragged_workload,
    run_bench,
    time_round_robin,
)

__all__ = [
    "BenchReport",
    "BenchRow",
    "compiled_thunk",
    "device_summary",
    "nominal_bandwidth",
    "padded_workload",
    "ragged_workload",
    "run_bench",
    "time_round_robin",
]
