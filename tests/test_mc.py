"""The Monte Carlo ELBO against the closed forms: values and reparameterised gradients.

``elbo_mc`` shares no algebra with ``elbo``/``elbo_grad`` beyond the model itself, so agreement
in mean is an independent check of both. Each comparison uses K independent keys of S draws:
the K estimates give a mean and its standard error (SE), and every check is
``|mean − closed form| ≤ 4·SE + floor``, where the floor (a few ulps of the values' size) only
matters where the estimator has no variance at all. Seeds are fixed, so the test is
deterministic; ``test_tolerance_has_power`` shows the same tolerance rejects wrong closed forms.
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
NUM_KEYS = 128  # estimates per check: enough for the SE itself to be within ~10%
NUM_DRAWS = 256  # draws per estimate
NUM_SE = 4.0
# Jitted once: an eager elbo_mc compiles op by op for every new shape.
ELBO_MC = jax.jit(jaxvi.elbo_mc, static_argnames="num_samples")


def _datasets() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Padded data, lengths, λ and σ for six datasets of different character."""
    rng = np.random.default_rng(20261123)
    rows = [
        np.array([]),  # n = 0: q against the prior alone
        np.array([0.3, 1.2, 2.0]),  # a few points, B > 0
        rng.normal(2.0, 0.5, 20),  # many points, a narrow posterior
        rng.normal(-3.0, 1.0, 12),  # B ≪ 0: posterior piled against z = 0
        rng.normal(1000.0, 1.0, 50),  # mean far from 0 (the shifted sums matter in float32)
        rng.normal(5.0, 2.0, 8),  # a weak prior and a large σ
    ]
    n_max = max(len(r) for r in rows)
    x = np.zeros((len(rows), n_max))
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
    lengths = np.array([len(r) for r in rows])
    lam = np.array([1.0, 0.5, 2.0, 1.0, 1.0, 0.1])
    sigma = np.array([1.0, 1.0, 0.5, 1.0, 1.0, 2.0])
    return x, lengths, lam, sigma


# Datasets whose estimator is tight enough (SE ≪ 1 with NUM_KEYS·NUM_DRAWS draws) that an
# error of 1 in the ELBO shows; the narrow posteriors of the others give an SE of order 1 or more.
SHARP = [0, 1, 3]
THETA_FACTORS = np.array([1.0, 0.5, 2.0])  # θ*, θ*/2, 2θ*


@functools.cache
def _problem(dtype):
    """Stats, λ and σ of shape (1, D) and θ of shape (3, D): rows θ*, θ*/2, 2θ*."""
    x, lengths, lam, sigma = _datasets()

    @jax.jit
    def build(x, lengths, lam, sigma):
        st = jaxvi.suff_stats(x, lengths)
        theta = (
            jaxvi.theta_star(st, lam, sigma)[None, :] * jnp.asarray(THETA_FACTORS, dtype)[:, None]
        )
        shape = theta.shape
        st = SuffStats(*(jnp.broadcast_to(f, shape) for f in st))
        return st, jnp.broadcast_to(lam, shape), jnp.broadcast_to(sigma, shape), theta

    lam, sigma = jnp.asarray(lam, dtype), jnp.asarray(sigma, dtype)
    return build(jnp.asarray(x, dtype), jnp.asarray(lengths, jnp.int32), lam, sigma)


def _summary(samples: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the leading (key) axis and its standard error."""
    s = np.asarray(samples, np.float64)
    return s.mean(0), s.std(0, ddof=1) / np.sqrt(s.shape[0])


@functools.cache
def _mc(dtype):
    """(mean, SE) of the MC ELBO and of its gradients in θ, λ and σ, each of shape (3, D)."""
    st, lam, sigma, theta = _problem(dtype)

    def estimate(key, th, la, si):
        return jaxvi.elbo_mc(key, th, st, la, si, num_samples=NUM_DRAWS)

    # Batch entries are independent, so the gradient of the sum is the per-entry gradient.
    grads = jax.grad(lambda *a: estimate(*a).sum(), argnums=(1, 2, 3))
    over_keys = lambda f: jax.vmap(f, in_axes=(0, None, None, None))

    @jax.jit
    def run(keys):
        return (
            over_keys(estimate)(keys, theta, lam, sigma),
            *over_keys(grads)(keys, theta, lam, sigma),
        )

    keys = jax.random.split(jax.random.key(7), NUM_KEYS)
    out = jax.block_until_ready(run(keys))
    return {
        name: _summary(v) for name, v in zip(("value", "theta", "lam", "sigma"), out, strict=True)
    }


@functools.cache
def _closed(dtype):
    """The closed forms at the same points: ELBO and its gradients in θ, λ and σ."""
    st, lam, sigma, theta = _problem(dtype)

    @jax.jit
    def closed(theta, st, lam, sigma):
        grads = jax.grad(lambda *a: jaxvi.elbo(*a).sum(), argnums=(0, 2, 3))
        g_theta, g_lam, g_sigma = grads(theta, st, lam, sigma)
        return {
            "value": jaxvi.elbo(theta, st, lam, sigma),
            "theta": jaxvi.elbo_grad(theta, st, lam, sigma),
            "theta_autodiff": g_theta,
            "lam": g_lam,
            "sigma": g_sigma,
        }

    return {k: np.asarray(v, np.float64) for k, v in closed(theta, st, lam, sigma).items()}


def _floor(dtype, closed: np.ndarray) -> np.ndarray:
    # Rounding of the closed form and of the MC sum: a few ulps of the values' size.
    return 64 * float(jnp.finfo(dtype).eps) * (1 + np.abs(closed))


def _check(dtype, name: str) -> None:
    mean, se = _mc(dtype)[name]
    closed = _closed(dtype)[name]
    tol = NUM_SE * se + _floor(dtype, closed)
    bad = np.abs(mean - closed) > tol
    assert not bad.any(), (
        f"{name}: MC mean and closed form disagree beyond {NUM_SE} SE at (θ-row, dataset) "
        f"{np.argwhere(bad).tolist()}:\nmean={mean}\nclosed={closed}\nse={se}"
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_matches_closed_form_elbo(dtype):
    _check(dtype, "value")


@pytest.mark.parametrize("dtype", DTYPES)
def test_reparameterised_grad_matches_elbo_grad(dtype):
    closed = _closed(dtype)
    # elbo_grad is jax.grad of elbo: the two closed-form routes agree to rounding.
    np.testing.assert_allclose(closed["theta_autodiff"], closed["theta"], rtol=1e-5)
    _check(dtype, "theta")


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_in_lam_matches_closed_form(dtype):
    _, lam, _, theta = _problem(dtype)
    # ∂ELBO/∂λ = 1/λ − 1/θ: B falls by 1 per unit λ, and the prior adds log λ.
    np.testing.assert_allclose(_closed(dtype)["lam"], 1 / lam - 1 / theta, rtol=1e-5)
    _check(dtype, "lam")


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_in_sigma_matches_closed_form(dtype):
    _check(dtype, "sigma")


@pytest.mark.parametrize("dtype", DTYPES)
def test_tolerance_has_power(dtype):
    """The 4-SE tolerance would catch a flipped θ-gradient, a dropped constant or a wrong λ."""
    closed = _closed(dtype)
    mean, se = _mc(dtype)["theta"]
    tol = NUM_SE * se + _floor(dtype, closed["theta"])
    off_optimum = closed["theta"][1:]  # rows θ*/2 and 2θ*; at θ* the gradient is 0
    assert (np.abs(mean[1:] + off_optimum) > tol[1:]).all(), "a sign flip would pass"
    mean, se = _mc(dtype)["value"]
    tol = NUM_SE * se + _floor(dtype, closed["value"])
    sharp = SHARP
    # ELBO − 1, i.e. the derivation's constant dropped, would be rejected.
    assert (np.abs(mean - (closed["value"] - 1))[:, sharp] > tol[:, sharp]).all()
    mean, se = _mc(dtype)["lam"]
    tol = NUM_SE * se + _floor(dtype, closed["lam"])
    # ∂/∂λ without the prior's 1/λ would be rejected.
    _, lam, _, _ = _problem(dtype)
    assert (np.abs(mean - (closed["lam"] - 1 / np.asarray(lam)))[:, sharp] > tol[:, sharp]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_dataset_at_prior_is_exact(dtype):
    # n = 0 and θ = λ: q is the prior, so every draw's log p(x, z) − log q(z) is exactly 0.
    st = SuffStats(jnp.zeros(2, dtype), jnp.zeros(2, dtype), jnp.zeros(2, dtype))
    lam = jnp.asarray([0.5, 3.0], dtype)
    est = ELBO_MC(jax.random.key(0), lam, st, lam, num_samples=64)
    assert est.dtype == dtype
    np.testing.assert_array_equal(est, np.zeros(2))


def test_shapes_dtype_and_broadcasting():
    st = SuffStats(*(jnp.ones((1, 5), jnp.float32) * v for v in (3.0, 1.0, 2.0)))
    theta = jnp.asarray([[0.5], [1.0], [2.0]], jnp.float32)
    est = ELBO_MC(jax.random.key(1), theta, st, num_samples=8)
    assert est.shape == (3, 5) and est.dtype == jnp.float32
    # The same ε for every dataset of the batch: identical datasets get identical estimates.
    np.testing.assert_array_equal(est, np.broadcast_to(est[:, :1], (3, 5)))
    # Scalar θ against a batch, and a batch against a scalar dataset.
    shape_of = lambda *args: jax.eval_shape(lambda: jaxvi.elbo_mc(*args, num_samples=8)).shape
    assert shape_of(jax.random.key(1), 1.0, st) == (1, 5)
    scalar = SuffStats(jnp.float32(3.0), jnp.float32(1.0), jnp.float32(2.0))
    assert shape_of(jax.random.key(1), theta[:, 0], scalar) == (3,)


def test_deterministic_per_key_under_jit():
    st = SuffStats(jnp.float32(3.0), jnp.float32(1.0), jnp.float32(2.0))
    f = lambda k: ELBO_MC(k, 1.5, st, num_samples=32)
    a = f(jax.random.key(3))
    np.testing.assert_array_equal(f(jax.random.key(3)), a)
    assert f(jax.random.key(4)) != a


def test_rejects_no_samples():
    st = SuffStats(jnp.float32(1.0), jnp.float32(0.0), jnp.float32(0.0))
    with pytest.raises(ValueError, match="num_samples"):
        jaxvi.elbo_mc(jax.random.key(0), 1.0, st, num_samples=0)
