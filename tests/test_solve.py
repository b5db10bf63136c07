"""``solve``: the fused kernel agrees with the individual functions and composes.

Tolerances (stated per dtype): ``solve`` runs the same formulas as the individual functions in
one fused XLA program, so the two may differ only by rounding (fusion may contract a·b + c into
an FMA). "Close" below means ``|x − y| ≤ RTOL·|y| + ATOL·scale`` with RTOL = 16 ulp and the
scale a value's natural size (1 + |y| unless stated).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi
from jaxvi import SuffStats

DTYPES = [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]

# The individual functions, jitted once for the whole module (eager calls compile op by op).
B = jax.jit(jaxvi.b)
THETA_STAR = jax.jit(jaxvi.theta_star)
ELBO = jax.jit(jaxvi.elbo)
ELBO_GRAD = jax.jit(jaxvi.elbo_grad)
LOG_EVIDENCE = jax.jit(jaxvi.log_evidence)
KL_GAP = jax.jit(jaxvi.kl_gap)
RELATIVE_GRAD = jax.jit(jaxvi.relative_grad)


def _ulps(dtype, k: float = 16) -> float:
    return k * float(jnp.finfo(dtype).eps)


def _close(actual, expected, dtype, *, scale=None, k: float = 16, what: str = "") -> None:
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    scale = 1 + np.abs(expected) if scale is None else np.asarray(scale, np.float64)
    tol = _ulps(dtype, k) * scale
    both_nan = np.isnan(actual) & np.isnan(expected)
    bad = ~both_nan & ~(np.abs(actual - expected) <= tol)
    assert not bad.any(), (
        f"{what}: differ at {np.flatnonzero(bad).tolist()}: {actual[bad]} vs {expected[bad]}"
    )


def _rows() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [
        np.array([]),  # n = 0: θ* = λ, KL = 0
        np.array([1.5, 1.5, 1.5]),
        rng.normal(2.0, 1.0, 30),
        rng.normal(-4.0, 1.0, 30),  # t ≪ 0: the tail formulas
        rng.normal(1000.0, 1.0, 40),  # mean far from 0: the shifted sums
        np.array([1e4]),  # B ≫ √a: the conjugate root
        rng.normal(0.3, 2.0, 7),
        np.array([-0.5, 0.25]),
    ]


LAM = np.array([1.0, 0.5, 2.0, 1.0, 0.01, 1.0, 3.0, 1.0])
SIGMA = np.array([1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 2.0, 0.1])


@functools.cache
def _problem(dtype):
    rows = _rows()
    x = np.zeros((len(rows), max(map(len, rows))))
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
    lengths = jnp.asarray([len(r) for r in rows], jnp.int32)
    st = jax.jit(jaxvi.suff_stats)(jnp.asarray(x, dtype), lengths)
    return st, jnp.asarray(LAM, dtype), jnp.asarray(SIGMA, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("theta_factor", [None, 0.5, 2.0], ids=["theta_star", "half", "double"])
def test_solve_equals_the_individual_functions(dtype, theta_factor):
    st, lam, sigma = _problem(dtype)
    th_star = THETA_STAR(st, lam, sigma)
    theta = None if theta_factor is None else th_star * theta_factor
    sol = jaxvi.solve(st, lam, sigma, theta=theta)
    at = th_star if theta is None else theta
    for field in sol:
        assert field.dtype == dtype and field.shape == (len(LAM),)
    np.testing.assert_array_equal(sol.n, st.n)
    _close(sol.b, B(st, lam, sigma), dtype, what="b")
    _close(sol.theta, at, dtype, scale=np.abs(at), what="theta")
    elbo = ELBO(at, st, lam, sigma)
    log_p = LOG_EVIDENCE(st, lam, sigma)
    # ELBO and log p carry Σx²/(2σ²) and friends: their rounding is relative to those terms.
    terms = 1 + np.abs(np.asarray(elbo, np.float64)) + np.abs(np.asarray(log_p, np.float64))
    _close(sol.elbo, elbo, dtype, scale=terms, what="elbo")
    _close(sol.log_evidence, log_p, dtype, scale=terms, what="log_evidence")
    # The gradient's yardstick is the size of its terms, |B|/θ² + 2a/θ³ + 1/θ.
    grad = ELBO_GRAD(at, st, lam, sigma)
    _close(sol.grad, grad, dtype, scale=_grad_scale(sol, sigma), what="grad")
    kl = KL_GAP(st, lam, sigma, theta=theta)
    _close(sol.kl_gap, kl, dtype, scale=np.abs(kl), k=64, what="kl_gap")


def _grad_scale(sol, sigma) -> np.ndarray:
    theta = np.asarray(sol.theta, np.float64)
    a = np.asarray(sol.n, np.float64) / np.asarray(sigma, np.float64) ** 2
    return np.abs(np.asarray(sol.b, np.float64)) / theta**2 + 2 * a / theta**3 + 1 / theta


@pytest.mark.parametrize("dtype", DTYPES)
def test_theta_none_is_theta_star(dtype):
    st, lam, sigma = _problem(dtype)
    best = jaxvi.solve(st, lam, sigma)
    given = jaxvi.solve(st, lam, sigma, theta=best.theta)
    for name, a, b in zip(best._fields, best, given, strict=True):
        _close(a, b, dtype, k=64, what=name)
    assert (np.asarray(best.kl_gap) >= 0).all()
    # Anywhere else the ELBO is lower and the KL gap larger; log p does not depend on θ.
    for factor in (0.5, 2.0):
        off = jaxvi.solve(st, lam, sigma, theta=best.theta * factor)
        assert (np.asarray(off.elbo) < np.asarray(best.elbo)).all()
        assert (np.asarray(off.kl_gap) > np.asarray(best.kl_gap)).all()
        _close(off.log_evidence, best.log_evidence, dtype, k=4, what="log p moved with θ")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("theta_factor", [None, 0.5, 2.0], ids=["theta_star", "half", "double"])
def test_kl_gap_is_log_evidence_minus_elbo(dtype, theta_factor):
    st, lam, sigma = _problem(dtype)
    theta = None
    if theta_factor is not None:
        theta = THETA_STAR(st, lam, sigma) * theta_factor
    sol = jaxvi.solve(st, lam, sigma, theta=theta)
    log_p = np.asarray(sol.log_evidence, np.float64)
    elbo = np.asarray(sol.elbo, np.float64)
    # The difference of the two sides cancels to the size of the sides themselves: that, and
    # not the KL, is the scale of the rounding error in log p − ELBO.
    _close(sol.kl_gap, log_p - elbo, dtype, scale=1 + np.abs(log_p) + np.abs(elbo), k=64)


def test_exact_false_gives_nan_for_the_exact_side():
    st, lam, sigma = _problem(jnp.float32)
    full = jaxvi.solve(st, lam, sigma)
    cheap = jaxvi.solve(st, lam, sigma, exact=False)
    assert np.isnan(cheap.log_evidence).all() and np.isnan(cheap.kl_gap).all()
    for name in ("n", "b", "theta", "elbo", "grad"):
        np.testing.assert_array_equal(getattr(cheap, name), getattr(full, name), err_msg=name)
    assert cheap.kl_gap.dtype == jnp.float32


def test_relative_grad_at_theta_star_is_small():
    rng = np.random.default_rng(1)
    num = 2000
    # A wide spread of B and a: B from −1e6 to 1e6, N from 0 to 1e6, λ and σ per dataset.
    n = np.floor(10 ** rng.uniform(0, 6, num)) * (rng.uniform(size=num) > 0.05)
    mean = rng.choice([-1, 1], num) * 10 ** rng.uniform(-3, 3, num)
    sum_x = (n * mean).astype(np.float32)
    st = SuffStats(n.astype(np.float32), sum_x, (n * mean**2 + n).astype(np.float32))
    lam = (10 ** rng.uniform(-4, 4, num)).astype(np.float32)
    sigma = (10 ** rng.uniform(-1, 1, num)).astype(np.float32)
    sol = jaxvi.solve(st, lam, sigma, exact=False)
    rel = np.asarray(RELATIVE_GRAD(sol, sigma))
    assert rel.dtype == np.float32 and np.isfinite(rel).all()
    assert rel.max() < 1e-5, f"worst {rel.max():.3g} at dataset {rel.argmax()}"
    # The control: away from θ* the same ratio is of order 1, so the bound above has teeth.
    off = jaxvi.solve(st, lam, sigma, theta=sol.theta * 2, exact=False)
    assert np.median(np.asarray(RELATIVE_GRAD(off, sigma))) > 0.05


def test_broadcasting_of_lam_sigma_theta():
    st, _, _ = _problem(jnp.float32)
    num = len(LAM)
    row = SuffStats(*(jnp.broadcast_to(f, (1, num)) for f in st))
    lam = np.asarray([[0.5], [1.0], [4.0]], np.float32)  # (3, 1) against (1, D)
    sigma = np.asarray(SIGMA, np.float32)
    theta = np.asarray([[0.2], [1.0], [3.0]], np.float32)
    sol = jaxvi.solve(row, lam, sigma[None, :], theta=theta)
    assert all(field.shape == (3, num) for field in sol)
    for i in range(3):
        one = jaxvi.solve(st, np.full(num, lam[i, 0]), sigma, theta=np.full(num, theta[i, 0]))
        for name, a, b in zip(sol._fields, sol, one, strict=True):
            _close(np.asarray(a)[i], b, jnp.float32, k=4, what=f"{name} row {i}")


def test_jit_vmap_and_grad_through_solve():
    st, lam, sigma = _problem(jnp.float32)
    direct = jaxvi.solve(st, lam, sigma)
    # One dataset per call, inside an enclosing jit: both transformations in one compilation.
    mapped = jax.jit(jax.vmap(jaxvi.solve))(st, lam, sigma)
    for name, a, b in zip(direct._fields, direct, mapped, strict=True):
        _close(b, a, jnp.float32, k=4, what=f"jit(vmap) {name}")
    # Envelope theorem through θ*(λ): d/dλ ELBO(θ*(λ), λ) = ∂ELBO/∂λ = 1/λ − 1/θ*.
    d_elbo = jax.jit(jax.grad(lambda rate: jaxvi.solve(st, rate, sigma).elbo.sum()))(lam)
    inv_lam, inv_theta = 1 / np.asarray(lam, np.float64), 1 / np.asarray(direct.theta, np.float64)
    _close(d_elbo, inv_lam - inv_theta, jnp.float32, k=64, scale=inv_lam + inv_theta)

    # The closed-form outputs are differentiable in λ and σ with a finite derivative. One summed
    # objective (one compilation): a NaN or inf in any field's derivative shows in the sum.
    # (The exact side, log p and KL, has its gradients checked against finite differences in
    # the exact kernels' own tests; differentiating it here would cost seconds of compilation.)
    def total(rate, scale):
        return sum(field.sum() for field in jaxvi.solve(st, rate, scale, exact=False)[1:5])

    d_lam, d_sigma = jax.jit(jax.grad(total, (0, 1)))(lam, sigma)
    assert np.isfinite(d_lam).all() and np.isfinite(d_sigma).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_kept(dtype):
    st, _, _ = _problem(dtype)
    sol = jaxvi.solve(st, 2.0, 0.5, theta=1.5)  # Python scalars are weak: they keep the dtype
    assert all(f.dtype == dtype for f in sol)
    assert RELATIVE_GRAD(sol, 0.5).dtype == dtype
    # Integer statistics are promoted to the default float.
    ints = SuffStats(*(np.asarray([2, 3], np.int32) for _ in range(3)))
    default = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    assert all(f.dtype == default for f in jaxvi.solve(ints))


def test_invalid_rows_are_nan_and_isolated():
    st, lam, sigma = _problem(jnp.float32)
    lam_bad = lam.at[1].set(-1.0)  # λ ≤ 0
    sigma_bad = sigma.at[2].set(0.0)  # σ ≤ 0
    sum_x_bad = st.sum_x.at[3].set(jnp.nan)  # non-finite data
    st_bad = st._replace(sum_x=sum_x_bad)
    bad = jaxvi.solve(st_bad, lam_bad, sigma_bad)
    good = jaxvi.solve(st, lam, sigma)
    for i in (1, 2, 3):
        assert np.isnan(bad.theta[i]) or np.isnan(bad.elbo[i]), f"row {i} should be invalid"
        assert not np.isfinite(bad.log_evidence[i]), f"row {i} log p"
    keep = np.array([0, 4, 5, 6, 7])
    for name, a, b in zip(good._fields, good, bad, strict=True):
        np.testing.assert_array_equal(np.asarray(b)[keep], np.asarray(a)[keep], err_msg=name)
