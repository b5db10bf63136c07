"""estimate_lam: type-II maximum likelihood of the prior rate over many datasets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi
from jaxvi import SuffStats, estimate_lam, log_evidence, simulate, suff_stats

DTYPES = [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]


def _stats(key, num, lam, sigma=1.0, sizes=(1, 20), dtype=jnp.float32) -> SuffStats:
    data, _ = simulate(jax.random.key(key), num, lam=lam, sigma=sigma, sizes=sizes, dtype=dtype)
    return suff_stats(*data)


def _total(stats, sigma=1.0):
    return lambda eta: log_evidence(stats, jnp.exp(eta), sigma).sum()


def _sd_log_lam(stats, lam_hat, sigma=1.0) -> float:
    """Asymptotic sampling sd of log λ̂: 1/√(observed information) in η = log λ."""
    eta = jnp.log(lam_hat)
    info = -jax.grad(jax.grad(_total(stats, sigma)))(eta)
    return float(1 / jnp.sqrt(info))


# One batch shape (D,) throughout, so that the loop compiles once per dtype and variant.
D = 20_000


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lam", [0.05, 2.0, 30.0])
def test_recovers_generating_lam(lam, dtype):
    stats = _stats(1, D, lam, dtype=dtype)
    lam_hat = estimate_lam(stats)
    assert lam_hat.dtype == dtype and lam_hat.shape == ()
    sd = _sd_log_lam(stats, lam_hat)
    # sd is at least the bound for z observed exactly, 1/√D (the noise only adds to it).
    assert np.sqrt(D) * sd >= 1.0
    # 4 sampling sds: this seed's miss is a draw from about N(0, sd²).
    assert abs(np.log(float(lam_hat) / lam)) < 4 * sd


@pytest.mark.parametrize("dtype", DTYPES)
def test_agrees_with_grid_search(dtype):
    stats = _stats(2, D, 1.5, sizes=(1, 8), dtype=dtype)
    lam_hat = estimate_lam(stats)
    eta_hat = jnp.log(lam_hat)
    sd = _sd_log_lam(stats, lam_hat)
    etas = eta_hat + jnp.linspace(-3 * sd, 3 * sd, 601, dtype=dtype)
    # Per-dataset terms summed in float64 on the host: the grid must see below float32 rounding.
    terms = jax.vmap(lambda e: log_evidence(stats, jnp.exp(e)))(etas)
    totals = np.asarray(terms, np.float64).sum(axis=1)
    spacing = float(etas[1] - etas[0])
    grid_best = float(etas[int(np.argmax(totals))])
    # Where the total is within its own rounding of the top, the argmax is a coin toss: a
    # parabola with curvature 1/sd² stays within `slack` of its peak over ±sd·√(2·slack).
    eps = float(jnp.finfo(dtype).eps)
    slack = 16 * eps * float(np.abs(np.asarray(terms[300], np.float64)).sum())
    flat = sd * np.sqrt(2 * slack)
    assert abs(grid_best - float(eta_hat)) <= 2 * spacing + flat
    at_hat = float(np.asarray(log_evidence(stats, lam_hat), np.float64).sum())
    assert totals.max() <= at_hat + slack


def test_jit_matches_eager():
    stats = _stats(3, D, 0.7)
    ref = estimate_lam(stats)
    out = jax.jit(estimate_lam)(stats)
    np.testing.assert_allclose(float(out), float(ref), rtol=1e-5)


def test_per_dataset_sigma():
    sigma = jax.random.uniform(jax.random.key(4), (D,), minval=0.2, maxval=3.0)
    stats = _stats(5, D, 1.2, sigma=sigma)
    lam_hat = estimate_lam(stats, sigma=sigma)
    sd = _sd_log_lam(stats, lam_hat, sigma)
    assert abs(np.log(float(lam_hat) / 1.2)) < 4 * sd
    # The sigmas matter: one wrong common σ (given per dataset) moves λ̂ by many sds.
    lam_wrong = estimate_lam(stats, sigma=jnp.full((D,), 3.0))
    assert abs(np.log(float(lam_wrong) / float(lam_hat))) > 10 * sd


@pytest.mark.parametrize("lam0", [1e-4, 1.0, 1e4])
def test_safeguards_converge_from_far_starts(lam0):
    stats = _stats(6, D, 3.0)
    ref = float(estimate_lam(stats))
    np.testing.assert_allclose(float(estimate_lam(stats, lam0=lam0)), ref, rtol=1e-4)


def test_empty_datasets_add_nothing_and_batch_shape_is_free():
    stats = _stats(7, D, 0.5)
    ref = float(estimate_lam(stats))
    zeros = jnp.zeros((500,), jnp.float32)
    padded = SuffStats(*(jnp.concatenate([f, zeros]).reshape(41, 500) for f in stats))
    np.testing.assert_allclose(float(estimate_lam(padded)), ref, rtol=1e-5)


def test_vmap_over_groups_estimates_each_group():
    a = _stats(8, D, 0.5)
    b = _stats(9, D, 5.0)
    both = SuffStats(*(jnp.stack([fa, fb]) for fa, fb in zip(a, b, strict=True)))
    out = jax.vmap(estimate_lam)(both)
    np.testing.assert_allclose(np.asarray(out), [estimate_lam(a), estimate_lam(b)], rtol=1e-5)


def test_no_data_gives_start_and_nan_data_gives_nan():
    empty = SuffStats(*(jnp.zeros((D,), jnp.float32) for _ in range(4)))
    assert float(estimate_lam(empty)) == 1.0
    assert float(estimate_lam(empty, lam0=3.0)) == 3.0
    stats = _stats(10, D, 1.0)
    bad = stats._replace(sum_x=stats.sum_x.at[3].set(jnp.nan))
    assert np.isnan(float(estimate_lam(bad)))
    assert np.isnan(float(estimate_lam(bad, lam0=1.0)))


def test_differentiable_by_the_implicit_function_theorem():
    stats = _stats(11, D, 2.0)
    of_sigma = lambda sigma: estimate_lam(stats, sigma=sigma)
    h = 1e-2  # central differences: O(h²) truncation, λ̂'s rounding / h of noise
    fd = (of_sigma(1 + h) - of_sigma(1 - h)) / (2 * h)
    np.testing.assert_allclose(float(jax.grad(of_sigma)(1.0)), float(fd), rtol=2e-3)
    # Forward mode, moving every dataset's sum by n·δ (all its points by δ).
    of_sums = lambda s: estimate_lam(stats._replace(sum_x=s))
    fwd = jax.jvp(of_sums, (stats.sum_x,), (stats.n,))[1]
    fd = (of_sums(stats.sum_x + h * stats.n) - of_sums(stats.sum_x - h * stats.n)) / (2 * h)
    np.testing.assert_allclose(float(fwd), float(fd), rtol=2e-3)


def test_exported():
    assert jaxvi.estimate_lam is estimate_lam
    assert "estimate_lam" in jaxvi.__all__
