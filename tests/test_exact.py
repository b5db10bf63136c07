"""Properties of the exact side: gradients, identities, empty datasets, NaN isolation, transforms.

The accuracy against mpmath is in ``test_reference_exact.py``; here we check what must hold
whatever the digits: KL ≥ 0, ``kl_gap = log_evidence − elbo``, ``∂ log p/∂λ = 1/λ − E[z|x]``,
the prior for ``n = 0``, one bad row touching only itself, and jit/vmap/grad.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxvi import (
    SuffStats,
    elbo,
    kl_gap,
    log_evidence,
    posterior,
    posterior_quantile,
    theta_star,
)
from jaxvi._model.tails import _KL_TABLE_EDGES, at_optimum

DTYPES = [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]


def kl_at_optimum(t):
    """``KL(q_θ* ‖ p(z|x))`` as a function of ``t = B/√a`` alone (:func:`at_optimum`)."""
    return at_optimum(t).kl


LAM, SIGMA, N = 0.7, 1.3, 4.0
# One point on each side of every switch in jaxvi._model.tails (f32: 2, 4, 8, 10; f64: 6, 20)
# and t ≥ 0.
T_POINTS = (3.0, 0.4, -0.6, -1.7, -2.5, -5.0, -7.0, -9.0, -12.0, -25.0)


def _stats_at(t, dtype, n=N, lam=LAM, sigma=SIGMA) -> SuffStats:
    """Statistics (shift 0) whose standardised ``t = B·σ/√n`` is ``t``; spread n·σ²/2."""
    t = np.asarray(t, np.float64)
    v = sigma * sigma
    s = v * (t * np.sqrt(n) / sigma + lam)
    s2 = s * s / n + n * v / 2
    full = np.full_like(t, n)
    return SuffStats(*(jnp.asarray(x, dtype) for x in (full, s, s2, np.zeros_like(t))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_is_nonnegative_everywhere(dtype):
    t = np.concatenate([-np.geomspace(1e-4, 1e12, 300), [0.0], np.geomspace(1e-4, 1e6, 100)])
    st = _stats_at(t, dtype)
    th = theta_star(st, LAM, SIGMA)
    for theta in (None, th * 0.9, th * 1.5, th * 1e-3):
        kl = kl_gap(st, LAM, SIGMA, theta=theta)
        assert kl.dtype == dtype
        assert bool(jnp.all(kl >= 0)), np.asarray(t)[np.asarray(~(kl >= 0))]


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_gap_equals_log_evidence_minus_elbo(dtype):
    # Where log p and the ELBO are O(1) the difference does not cancel much, so the two
    # routes must agree to a few ulps of |log p| + |ELBO|.
    st = _stats_at(np.array(T_POINTS[:6]), dtype)
    th = theta_star(st, LAM, SIGMA)
    eps = float(jnp.finfo(dtype).eps)
    for theta in (th, th * 0.5, th * 2.0, th * 1.1):
        lp = log_evidence(st, LAM, SIGMA)
        el = elbo(theta, st, LAM, SIGMA)
        kl = kl_gap(st, LAM, SIGMA, theta=theta)
        tol = 64 * eps * (jnp.abs(lp) + jnp.abs(el) + 1)
        np.testing.assert_array_less(np.asarray(jnp.abs(kl - (lp - el))), np.asarray(tol))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_are_the_posterior_moments(dtype):
    """``∂ log p/∂λ = 1/λ − E[z|x]`` and ``∂ log p/∂Σx = E[z|x]/σ²`` (shift 0)."""
    st = _stats_at(np.array(T_POINTS), dtype)
    lam = jnp.full(st.n.shape, LAM, dtype)
    d_lam = jax.jit(jax.grad(lambda lam_: log_evidence(st, lam_, SIGMA).sum()))(lam)
    d_s = jax.jit(jax.grad(lambda s: log_evidence(st._replace(sum_x=s), lam, SIGMA).sum()))(
        st.sum_x
    )
    mean = posterior(st, lam, SIGMA).mean
    rtol = 1e-4 if dtype == jnp.float32 else 1e-10
    np.testing.assert_allclose(d_lam, 1 / lam - mean, rtol=rtol, atol=rtol / LAM)
    np.testing.assert_allclose(d_s, mean / SIGMA**2, rtol=rtol)


@jax.jit
def _log_p(n, lam, sigma, sum_x, sum_x2):
    return log_evidence(SuffStats(n, sum_x, sum_x2, jnp.zeros_like(n)), lam, sigma)


@jax.jit
def _kl(n, lam, sigma, sum_x, sum_x2, theta):
    return kl_gap(SuffStats(n, sum_x, sum_x2, jnp.zeros_like(n)), lam, sigma, theta=theta)


@pytest.mark.float64
def test_check_grads_log_evidence_and_kl_gap():
    """Against finite differences at one point on each side of every switch of
    jaxvi._model.tails."""
    # The kernels are elementwise, so a batch of points checks each point: the directional
    # derivative of row i depends on row i's tangent only.
    st = _stats_at(np.array(T_POINTS), jnp.float64)
    th = theta_star(st, LAM, SIGMA) * 1.3
    lam, sigma = jnp.full_like(st.n, LAM), jnp.full_like(st.n, SIGMA)
    args = (lam, sigma, st.sum_x, st.sum_x2)
    check_grads(partial(_log_p, st.n), args, order=1, modes=("fwd", "rev"), rtol=1e-5)
    # kl_gap at θ goes through at_optimum(t) too, so this also checks the gradient at θ*.
    check_grads(partial(_kl, st.n), (*args, th), order=1, modes=("fwd", "rev"), rtol=1e-4)


def test_float32_kl_table_gradient_and_seams():
    """The float32 KL of ``kl_at_optimum`` on ``[−10, 4)`` is a table: its derivative and joins.

    ``dKL/dt = (u − 2/u³ + 1/u)·u′ + φ(t)/Φ(t)`` with ``u′ = −u/(2u + t)`` (from
    ``u² + tu − 2 = 0``), in float64 NumPy.
    """
    t = np.linspace(-10.2, 4.2, 291)
    u = (-t + np.sqrt(t * t + 8)) / 2
    ratio = np.sqrt(2 / np.pi) * np.exp(-t * t / 2) / np.vectorize(math.erfc)(-t / np.sqrt(2))
    slope = (u - 2 / u**3 + 1 / u) * (-u / (2 * u + t)) + ratio
    grad = jax.jit(jax.vmap(jax.grad(kl_at_optimum)))(jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(grad, slope, rtol=1e-4)
    # Every join between pieces, and both ends: the two sides agree to ~1 ulp.
    joins = np.array(_KL_TABLE_EDGES, np.float32)
    below = np.nextafter(joins, np.float32(-np.inf))
    kl = jax.jit(kl_at_optimum)
    np.testing.assert_allclose(kl(jnp.asarray(below)), kl(jnp.asarray(joins)), rtol=1e-6)


def test_float32_kl_table_values():
    """The float32 KL table on ``[−10, 4)`` against mpmath, every piece densely.

    Within 3·2⁻²⁴ relative at exact float32 ``t`` (measured worst 2.4·2⁻²⁴, set by the
    rounding of ``s`` and Horner's), well inside the 1e-6 that float32 data are held to.
    """
    t = np.linspace(-10, 4, 561)[:-1].astype(np.float32)
    with mp.workdps(30):
        ref = []
        for v in t.tolist():
            h = mp.mpf(v) / 2
            u = 2 / (h + mp.sqrt(h * h + 2))
            logs = mp.log(u) + mp.log(2 * mp.pi) / 2 + mp.log(mp.ncdf(v))
            ref.append(float(u * u / 2 - 2 + 1 / (u * u) + logs))
    got = np.asarray(jax.jit(kl_at_optimum)(jnp.asarray(t)), np.float64)
    np.testing.assert_allclose(got, ref, rtol=3 * 2.0**-24)


def test_float32_log_phi_table_values_gradient_and_seams():
    """float32 ``log Φ(t)``, ``t ≥ 0``, for ``log_evidence``: a table on ``[0, 4)``, then
    ``−Q(1 + Q/2)`` with ``Q = φ(t)/(t + m(t))``.

    Within 8e-8 absolute of mpmath (measured 6.2e-8; ``log1p(−ndtr(−t))``, which it replaced,
    is 1.0e-7 off near t = 0, where the reference's worst ``log_evidence`` sits);
    ``d log Φ/dt = φ(t)/Φ(t)``; the joins at t = 1, 2 and 4 agree to an ulp of 1.
    """
    t = np.concatenate([np.linspace(0, 6, 601), np.geomspace(6, 1e4, 20)]).astype(np.float32)
    log_phi = jax.jit(lambda t: at_optimum(t).log_tail)
    with mp.workdps(30):
        ref = np.array([float(mp.log(mp.ncdf(v))) for v in t.tolist()])
        slope = np.array([float(mp.npdf(v) / mp.ncdf(v)) for v in t.tolist()])
    np.testing.assert_allclose(log_phi(jnp.asarray(t)), ref, rtol=0, atol=8e-8)
    grad = jax.jit(jax.vmap(jax.grad(lambda t: at_optimum(t).log_tail)))(jnp.asarray(t))
    # A table's slope is right to its value's error over its scale: 2e-7 absolute, against
    # terms of order t in every gradient that it enters (E[z|x] = (t + φ/Φ)/√a).
    np.testing.assert_allclose(grad, slope, rtol=1e-4, atol=2e-7)
    joins = np.array([1.0, 2.0, 4.0], np.float32)
    below = np.nextafter(joins, np.float32(-np.inf))
    np.testing.assert_allclose(
        log_phi(jnp.asarray(below)), log_phi(jnp.asarray(joins)), atol=1.2e-7
    )


def _log_mills_mp(y: float) -> float:
    """``log R(y)`` at 30 digits."""
    with mp.workdps(30):
        y = mp.mpf(y)
        return float(mp.log(mp.sqrt(mp.pi / 2) * mp.exp(y * y / 2) * mp.erfc(y / mp.sqrt(2))))


def test_float32_log_mills_table_values_gradient_and_seams():
    """float32 ``log R(y)`` for ``log_evidence``: a table on ``[0, 8]``, a series beyond.

    Within 2.5·2⁻²³·max(1, |log R|) of mpmath (``log_evidence``'s error is measured against
    the size of its terms, which is ≥ 1), what the 12-term Taylor tables and the 32-term
    continued fraction it replaced gave; ``d log R/dy = y − 1/R``; the joins at y = 4 and 8
    agree to an ulp.
    """
    y = np.concatenate([np.linspace(0.01, 12, 500), np.geomspace(12, 1e6, 40)])
    y = y.astype(np.float32)
    log_r = jax.jit(lambda y: at_optimum(-y).log_tail)
    ref = np.array([_log_mills_mp(float(v)) for v in y])
    err = np.abs(np.asarray(log_r(jnp.asarray(y)), np.float64) - ref)
    np.testing.assert_array_less(err, 2.5 * 2.0**-23 * np.maximum(1, np.abs(ref)))
    slope = y - 1 / np.exp(ref)
    grad = jax.jit(jax.vmap(jax.grad(lambda y: at_optimum(-y).log_tail)))(jnp.asarray(y))
    np.testing.assert_allclose(grad, slope, rtol=1e-4, atol=1e-6)
    joins = np.array([4.0, 8.0], np.float32)
    above = np.nextafter(joins, np.float32(np.inf))
    np.testing.assert_allclose(log_r(jnp.asarray(above)), log_r(jnp.asarray(joins)), atol=3e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_dataset_is_the_prior(dtype):
    zero = jnp.zeros((), dtype)
    st = SuffStats(zero, zero, zero, zero)
    lam = jnp.asarray(2.5, dtype)
    th = theta_star(st, lam)
    assert float(th) == 2.5
    assert float(elbo(th, st, lam)) == 0
    assert float(log_evidence(st, lam)) == 0
    assert float(kl_gap(st, lam)) == 0
    # KL(Exp(θ) ‖ Exp(λ)) = λ/θ − 1 − log(λ/θ).
    np.testing.assert_allclose(kl_gap(st, lam, theta=5.0), 0.5 - 1 - np.log(0.5), rtol=1e-6)
    post = posterior(st, lam)
    assert float(post.loc) == -np.inf and float(post.scale) == np.inf
    np.testing.assert_allclose([post.mean, post.var], [1 / 2.5, 1 / 2.5**2], rtol=1e-6)
    p = jnp.asarray([0.025, 0.5, 0.975], dtype)
    np.testing.assert_allclose(posterior_quantile(p, st, lam), -np.log1p(-p) / 2.5, rtol=1e-6)
    # The gradient with respect to λ of an empty dataset's log evidence is 0, and finite.
    assert float(jax.jit(jax.grad(lambda lam_: log_evidence(st, lam_)))(lam)) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_bad_row_touches_only_itself(dtype):
    st = _stats_at(np.array([0.5, -3.0, -40.0, 2.0]), dtype)
    lam = jnp.asarray([LAM, -1.0, LAM, LAM], dtype)  # row 1: λ ≤ 0
    sum_x = st.sum_x.at[3].set(jnp.nan)  # row 3: NaN data
    bad = SuffStats(st.n, sum_x, st.sum_x2, st.shift)
    good = np.array([True, False, True, False])

    def every(s, la):
        post = posterior(s, la, SIGMA)
        p = jnp.asarray([0.025, 0.975], dtype)
        q = posterior_quantile(p[None, :], jax.tree.map(lambda f: f[:, None], s), la[:, None])
        return (log_evidence(s, la, SIGMA), kl_gap(s, la, SIGMA), post.mean, post.var, q)

    ref = every(st, jnp.full((4,), LAM, dtype))
    for got, want in zip(every(bad, lam), ref, strict=True):
        np.testing.assert_array_equal(got[good], want[good])
        assert not np.any(np.isfinite(np.asarray(got)[~good]))
    # Gradients too: the bad rows must not leak NaN into the good ones.
    g = jax.jit(jax.grad(lambda s: log_evidence(bad._replace(sum_x=s), lam, SIGMA).sum()))(sum_x)
    assert np.all(np.isfinite(np.asarray(g)[good]))


@pytest.mark.parametrize("dtype", [jnp.float32])  # the transforms do not depend on the dtype
def test_jit_vmap_grad_compose(dtype):
    st = _stats_at(np.array(T_POINTS).reshape(2, 5), dtype)

    def f(s):
        return log_evidence(s, LAM, SIGMA) + kl_gap(s, LAM, SIGMA)

    direct = f(st)
    assert direct.dtype == dtype
    rtol = 1e-6 if dtype == jnp.float32 else 1e-14
    np.testing.assert_allclose(jax.jit(f)(st), direct, rtol=rtol)
    np.testing.assert_allclose(jax.vmap(jax.vmap(f))(st), direct, rtol=rtol)
    # Per-row gradients by vmap(grad) equal the batch gradient of the sum (rows independent).
    g_rows = jax.jit(jax.vmap(jax.vmap(jax.grad(lambda s: log_evidence(s, LAM, SIGMA)))))(st)
    g_sum = jax.jit(jax.grad(lambda s: log_evidence(s, LAM, SIGMA).sum()))(st)
    for a, b in zip(g_rows[:3], g_sum[:3], strict=True):
        assert np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_allclose(a, b, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_quantiles_are_monotone_and_bracket_the_mean(dtype):
    t = np.concatenate([-np.geomspace(1e-3, 1e9, 60), [0.0], np.geomspace(1e-3, 1e4, 20)])
    st = _stats_at(t, dtype)
    p = jnp.asarray([0.001, 0.025, 0.16, 0.5, 0.84, 0.975, 0.999], dtype)
    q = posterior_quantile(p[:, None], jax.tree.map(lambda f: f[None, :], st), LAM, SIGMA)
    assert bool(jnp.all(jnp.isfinite(q))) and bool(jnp.all(q >= 0))
    assert bool(jnp.all(jnp.diff(q, axis=0) > 0))
    mean = posterior(st, LAM, SIGMA).mean
    assert bool(jnp.all((q[1] < mean) & (mean < q[5])))
