"""Gradients of the closed-form kernels: finite, exact where they can be, and consistent.

* ``elbo_grad`` against the analytic ``−B/θ² + 2a/θ³ − 1/θ`` (mpmath), finite wherever that
  value is representable, θ down to 1e-12 in float32 included (DESIGN.md §1, trap 2);
* the envelope theorem through ``theta_star``: d/dλ ELBO(θ*(λ), λ) = 1/λ − 1/θ*;
* ``jax.test_util.check_grads`` for ``elbo`` (θ, λ, σ and every field of the statistics),
  ``b`` and ``theta_star``;
* ``jax.grad`` of ``theta_star`` against the implicit derivative over the reference domain.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxvi
from jaxvi import SuffStats

DTYPES = [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]
REF = Path(__file__).parent / "reference" / "closed_form_reference.npz"

# (n, Σx, Σx², λ, σ), every number exact in float32: B from −1e12 to 1e12, a from 0 to 1e8.
GRAD_CASES = [
    (0.0, 0.0, 0.0, 1.0, 1.0),
    (0.0, 0.0, 0.0, 1e-4, 10.0),
    (1.0, 1e4, 1e8, 1.0, 1.0),  # trap 1: θ* = 2e-4 that the textbook root rounds to 0
    (1.0, 3.0, 9.0, 1.0, 0.1),  # a = 100
    (1.0, 1e8, 1e16, 1.0, 0.5),  # B = 4e8
    (1e6, 5e5, 3e6, 1.0, 10.0),
    (1e3, -1e5, 2e7, 1e4, 1.0),
    (64.0, 1e10, 2e18, 2.0, 0.125),  # B = 6.4e11
    (3.0, -1e9, 5e17, 1.0, 1.0),  # B = −1e9
]


def _theta_grid(dtype) -> np.ndarray:
    """θ on a log grid over the dtype's useful range, each value exact in the dtype."""
    lo, hi = (-12, 12) if dtype == jnp.float32 else (-60, 60)
    return np.asarray(10.0 ** np.linspace(lo, hi, 4 * (hi - lo) + 1), dtype)


def _analytic_grad(case, theta: float) -> tuple[mp.mpf, mp.mpf]:
    """``dELBO/dθ`` and the contract's scale ``|B|/θ² + 2a/θ³ + 1/θ``, at 60 digits."""
    with mp.workdps(60):
        n, s, _, lam, sigma = (mp.mpf(float(np.float32(x))) for x in case)
        v = sigma**2
        a, bb, t = n / v, s / v - lam, mp.mpf(float(theta))
        return -bb / t**2 + 2 * a / t**3 - 1 / t, abs(bb) / t**2 + 2 * a / t**3 + 1 / t


@pytest.mark.parametrize("dtype", DTYPES)
def test_elbo_grad_matches_analytic_form_and_is_finite_where_representable(dtype):
    thetas = _theta_grid(dtype)
    cols = [jnp.asarray(np.float32(col), dtype)[:, None] for col in zip(*GRAD_CASES, strict=True)]
    bc = lambda x: jnp.broadcast_to(x, (len(GRAD_CASES), len(thetas)))
    st = SuffStats(*(bc(c) for c in cols[:3]), bc(jnp.zeros((), dtype)))
    got = jax.jit(jaxvi.elbo_grad)(jnp.asarray(thetas, dtype), st, bc(cols[3]), bc(cols[4]))
    got = np.asarray(got)
    fi = jnp.finfo(dtype)
    tol = 8 if dtype == jnp.float32 else 32
    failures = []
    for case, row in zip(GRAD_CASES, got, strict=True):
        for theta, g in zip(thetas, row, strict=True):
            ref, scale = _analytic_grad(case, theta)
            if abs(ref) <= fi.max:
                ulps = float(abs(mp.mpf(float(g)) - ref) / (scale * float(fi.eps)))
                ok = bool(np.isfinite(g)) and ulps <= tol
            else:  # beyond the dtype's range: an infinity of the right sign, never NaN
                ulps, ok = np.inf, g == (np.inf if ref > 0 else -np.inf)
            if not ok:
                failures.append(f"case {case}, θ={theta:g}: got {g}, want {float(ref):.9g}")
    assert not failures, f"{len(failures)} failures, e.g.\n" + "\n".join(failures[:10])


def test_elbo_grad_is_finite_at_theta_1e_minus_12_in_float32():
    """2a/θ³ = 2e38 at θ = 1e-12, a = 100: representable, while θ⁻⁴ (autodiff of a/θ²) is not."""
    st = SuffStats(jnp.float32(1.0), jnp.float32(3.0), jnp.float32(9.0))
    g = jaxvi.elbo_grad(jnp.float32(1e-12), st, 1.0, jnp.float32(0.1))
    assert g.dtype == jnp.float32
    assert np.isfinite(g) and 1.9e38 < float(g) < 2.1e38
    # The same through jax.grad of elbo itself.
    g2 = jax.grad(jaxvi.elbo)(jnp.float32(1e-12), st, 1.0, jnp.float32(0.1))
    assert np.isfinite(g2) and float(g2) == float(g)


def _envelope_cases(dtype):
    cases = [c for c in GRAD_CASES if c[0] > 0]
    cols = [jnp.asarray(np.float32(col), dtype) for col in zip(*cases, strict=True)]
    return SuffStats(*cols[:3], jnp.zeros_like(cols[0])), cols[3], cols[4]


@pytest.mark.parametrize("dtype", DTYPES)
def test_envelope_theorem_through_theta_star(dtype):
    """d/dλ ELBO(θ*(λ), λ) = ∂ELBO/∂λ at fixed θ = 1/λ − 1/θ*: the θ path contributes 0."""
    st, lam, sigma = _envelope_cases(dtype)

    def elbo_at_optimum(lam_, st_, sigma_):
        return jaxvi.elbo(jaxvi.theta_star(st_, lam_, sigma_), st_, lam_, sigma_)

    got = jax.jit(jax.vmap(jax.grad(elbo_at_optimum)))(lam, st, sigma)
    theta = jaxvi.theta_star(st, lam, sigma)
    expected = 1 / np.asarray(lam, np.float64) - 1 / np.asarray(theta, np.float64)
    scale = 1 / np.asarray(lam, np.float64) + 1 / np.asarray(theta, np.float64)
    tol = 16 * float(jnp.finfo(dtype).eps)
    np.testing.assert_array_less(np.abs(np.asarray(got, np.float64) - expected), tol * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wrt", ["sigma", "sum_x", "n"])
def test_envelope_theorem_for_every_other_argument(wrt, dtype):
    """Through θ*, the gradient of ELBO(θ*) equals the gradient at θ held fixed, for any input."""
    st, lam, sigma = _envelope_cases(dtype)

    def at_optimum(x, held):
        args = {"sigma": sigma, **st._asdict(), wrt: x}
        stats = SuffStats(args["n"], args["sum_x"], args["sum_x2"], args["shift"])
        theta = jaxvi.theta_star(stats, lam, args["sigma"])
        if held:
            theta = jax.lax.stop_gradient(theta)
        return jaxvi.elbo(theta, stats, lam, args["sigma"]).sum()

    x = sigma if wrt == "sigma" else getattr(st, wrt)
    grad = jax.jit(jax.grad(at_optimum), static_argnums=1)
    through = np.asarray(grad(x, False), np.float64)
    held = np.asarray(grad(x, True), np.float64)
    # The θ path adds ∂ELBO/∂θ·∂θ*/∂x with ∂ELBO/∂θ a few ulp of its scale at θ*.
    tol = 64 * float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(through, held, rtol=tol, atol=0)


# A well-conditioned point for finite differences; the shift is nonzero so that its
# derivative is exercised, and θ is away from θ* so that ∂/∂θ is not ~0.
CHECK_POINT = dict(theta=0.7, n=5.0, sum_x=3.2, sum_x2=4.1, shift=0.3, lam=1.3, sigma=0.8)
CHECK_ARGS = ["theta", "lam", "sigma", "n", "sum_x", "sum_x2", "shift"]


def _check_grads_options(dtype):
    # float32 finite differences are noisy: step 1e-2 and 2e-2 relative tolerance;
    # float64 uses check_grads' own defaults.
    return {"eps": 1e-2, "atol": 2e-2, "rtol": 2e-2} if dtype == jnp.float32 else {}


def _stats_of(p):
    return SuffStats(p["n"], p["sum_x"], p["sum_x2"], p["shift"])


def _checked(p):
    """Every closed-form kernel of the parameters ``p``; θ only enters the ELBO."""
    stats = _stats_of(p)
    return (
        jaxvi.elbo(p["theta"], stats, p["lam"], p["sigma"]),
        jaxvi.b(stats, p["lam"], p["sigma"]),
        jaxvi.theta_star(stats, p["lam"], p["sigma"]),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_grads(dtype):
    """``elbo``, ``b`` and ``theta_star`` in forward mode to second order and in reverse mode,
    in every argument at once: θ, λ, σ and each field of the statistics. check_grads draws
    random directions over all of them; one function keeps compilation short (reverse over
    reverse, which adds nothing the forward second order does not check, costs 30 s more)."""
    args = tuple(jnp.asarray(CHECK_POINT[k], dtype) for k in CHECK_ARGS)
    f = jax.jit(lambda *xs: _checked(dict(zip(CHECK_ARGS, xs, strict=True))))
    check_grads(f, args, order=2, modes=("fwd",), **_check_grads_options(dtype))
    check_grads(f, args, order=1, modes=("rev",), **_check_grads_options(dtype))


def test_check_grads_sees_every_argument():
    """Each argument moves the ELBO, so the all-at-once check above covers each of them."""
    point = {k: jnp.float32(v) for k, v in CHECK_POINT.items()}
    grads = jax.grad(lambda p: _checked(p)[0])(point)
    assert all(abs(float(g)) > 1e-3 for g in grads.values()), grads


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_of_theta_star_matches_implicit_derivative_over_the_domain(dtype):
    """On every reference row, in both dtypes, from σ²θ² + (Σx − λσ²)θ − 2n = 0:

    * ∂θ*/∂λ = θ*/(2θ* + B), relative to itself;
    * ∂θ*/∂σ = 2θ*(λ − θ*)/(σ(2θ* + B)), relative to 2θ*(λ + θ*)/(σ(2θ* + B)) (it is 0 at
      θ* = λ). Through ∂B and ∂a instead, its terms cancel: 10⁻⁴ off at B/λ = 10³ in float32.
    """
    with np.load(REF) as ref:
        stats = SuffStats(*(jnp.asarray(ref[k], dtype) for k in ("n", "s", "s2")))
        stats = stats._replace(shift=jnp.zeros_like(stats.n))
        lam, sigma = jnp.asarray(ref["lam"], dtype), jnp.asarray(ref["sigma"], dtype)
        theta, bb = ref["theta_star_hi"], ref["b_hi"]
    one = lambda lam_, sig_, st_: jaxvi.theta_star(st_, lam_, sig_)
    grads = jax.jit(jax.vmap(jax.grad(one, argnums=(0, 1))))(lam, sigma, stats)
    d_lam, d_sigma = (np.asarray(g, np.float64) for g in grads)
    lam64, sigma64 = np.asarray(lam, np.float64), np.asarray(sigma, np.float64)
    root = 2 * theta + bb  # = √(B² + 8a) > 0, no cancellation in float64
    fi = jnp.finfo(dtype)
    checks = {
        "d/dλ": (d_lam, theta / root, theta / root),
        "d/dσ": (
            d_sigma,
            2 * theta * (lam64 - theta) / (sigma64 * root),
            2 * theta * (lam64 + theta) / (sigma64 * root),
        ),
    }
    for name, (got, expected, scale) in checks.items():
        ok = np.abs(got - expected) <= 16 * float(fi.eps) * scale
        ok |= (scale < 1000 * float(fi.tiny)) & (np.abs(got) < 1000 * float(fi.tiny))
        bad = ~ok
        assert ok.all(), f"{name}: {bad.sum()} rows off, e.g. {got[bad][:3]} vs {expected[bad][:3]}"
