"""Padded kernel on device-resident float32 ``(2·10⁶, 64)``: θ*, ELBO, gradient (+ exact),
with ``lengths`` (issue 4's kernel) and on full rows."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compile_and_warm, median_time, run_benchmark

from jaxvi import solve, suff_stats


def _bench_padded(benchmark, padded_x, fn, *args, roofline=None):
    thunk, compile_s = compile_and_warm(fn, padded_x, *args)
    if roofline == "self":
        roofline = median_time(thunk)
    return run_benchmark(
        benchmark,
        thunk,
        num_datasets=padded_x.shape[0],
        nbytes=padded_x.nbytes,
        compile_seconds=compile_s,
        roofline=roofline,
    )


def test_roofline_jnp_sum(benchmark, padded_x):
    _bench_padded(benchmark, padded_x, jnp.sum, roofline="self")


@pytest.mark.parametrize("exact", [False, True], ids=["closed-form", "exact"])
def test_padded_solve_lengths(benchmark, padded_x, exact):
    """Issue 4's padded kernel: ``solve(suff_stats(x, lengths))`` (lengths all 64)."""
    lengths = jnp.full(padded_x.shape[0], padded_x.shape[1], jnp.int32)
    sol = _bench_padded(
        benchmark, padded_x, lambda x, n: solve(suff_stats(x, n), exact=exact), lengths
    )
    assert np.isfinite(np.asarray(sol.theta)).all()


@pytest.mark.parametrize("exact", [False, True], ids=["closed-form", "exact"])
def test_padded_solve_full_rows(benchmark, padded_x, exact):
    """The fast path for datasets that fill their rows: ``suff_stats(x)`` with no mask."""
    sol = _bench_padded(benchmark, padded_x, lambda x: solve(suff_stats(x), exact=exact))
    assert np.isfinite(np.asarray(sol.theta)).all()
