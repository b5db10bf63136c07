"""A second call with the same shapes compiles nothing; a new shape does (so the counter works)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compile_counter import BACKEND_COMPILE_EVENT, count_compilations
from jax._src import dispatch

import jaxvi
from jaxvi._tools.demo import _pipeline


def _stats(num: int, seed: int) -> jaxvi.SuffStats:
    # NumPy-made statistics: building them costs no compilation of its own.
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 9, num).astype(np.float32)
    sum_x = (rng.normal(1.0, 1.0, num) * n).astype(np.float32)
    sum_x2 = (sum_x * sum_x / np.maximum(n, 1) + n).astype(np.float32)
    return jaxvi.SuffStats(n, sum_x, sum_x2, np.zeros(num, np.float32))


def test_counter_listens_to_jax_compile_event():
    # The hook is jax's own constant: if jax renames the event, this fails instead of the
    # counter silently reading 0 forever.
    assert BACKEND_COMPILE_EVENT == dispatch.BACKEND_COMPILE_EVENT
    f = jax.jit(lambda x: x * 3 + 1)
    x = jnp.ones(7)
    with count_compilations() as log:
        f(x)
        f(x + 1)  # the eager add compiles too; the second f call does not
    assert log.names == ["jit(<lambda>)", "jit(add)"], log.names


@pytest.mark.parametrize("theta", [None, 0.7], ids=["theta_star", "theta_given"])
@pytest.mark.parametrize("exact", [True, False])
def test_solve_second_call_compiles_nothing(theta, exact):
    jax.block_until_ready(jaxvi.solve(_stats(100, 0), 1.5, theta=theta, exact=exact))
    with count_compilations() as log:
        jax.block_until_ready(jaxvi.solve(_stats(100, 1), 1.5, theta=theta, exact=exact))
    assert log.count == 0, f"recompiled: {log.names}"


def test_solve_new_shape_compiles():
    """The control: without it, a blind counter would pass every test above."""
    jax.block_until_ready(jaxvi.solve(_stats(100, 0)))
    with count_compilations() as log:
        jax.block_until_ready(jaxvi.solve(_stats(101, 2)))
    assert log.names == ["jit(solve)"], log.names


def test_pipeline_second_call_compiles_nothing():
    """The demo's fused pipeline: suff_stats → solve → posterior in one jit."""
    fn = jax.jit(_pipeline)
    rng = np.random.default_rng(0)

    def run():
        x = rng.normal(1.0, 1.0, (256, 16)).astype(np.float32)
        lengths = rng.integers(1, 17, 256).astype(np.int32)
        return jax.block_until_ready(fn(x, lengths, 1.0, 1.0))

    run()
    with count_compilations() as log:
        run()
    assert log.count == 0, f"recompiled: {log.names}"


def test_simulate_second_call_compiles_nothing():
    # The shapes of tests/test_simulate.py, so a run of both compiles them once.
    jax.block_until_ready(jaxvi.simulate(jax.random.key(0), 50, sizes=(1, 5)))
    with count_compilations() as log:
        jax.block_until_ready(jaxvi.simulate(jax.random.key(1), 50, sizes=(1, 5)))
    assert log.count == 0, f"recompiled: {log.names}"


def test_per_dataset_parameters_do_not_recompile_on_new_values():
    stats = _stats(64, 3)
    lam = np.linspace(0.5, 2.0, 64, dtype=np.float32)
    jax.block_until_ready(jaxvi.solve(stats, lam, 2 * lam))
    with count_compilations() as log:
        jax.block_until_ready(jaxvi.solve(stats, lam[::-1].copy(), lam))
    assert log.count == 0, f"recompiled: {log.names}"
