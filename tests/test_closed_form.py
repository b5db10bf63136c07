"""Composability of the closed-form kernels ``b``, ``theta_star``, ``elbo`` and ``elbo_grad``.

They work under ``jit``, ``vmap`` (nested too) and ``grad``; ``lam`` and ``sigma`` broadcast
per dataset; dtypes are kept (float32 in, float32 out; integers promoted; float64 under x64);
a second jitted call with the same shapes compiles nothing; and an invalid dataset gives NaN
in its own row only. Accuracy is in ``test_reference_closed_form.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compile_counter import count_compilations

import jaxvi
from jaxvi import SuffStats

DTYPES = [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]

# Six datasets as (n, Σx, Σx², shift): empty, tiny, B ≫ 0, B ≪ 0, shifted, large.
ROWS = np.array(
    [
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.5, 0.25, 0.0],
        [3.0, 1e4, 4e7, 0.0],
        [4.0, -50.0, 700.0, 0.0],
        [5.0, 1.5, 2.5, 1000.0],
        [1e5, 2e4, 1.1e5, 0.0],
    ]
)
LAM = np.array([1.0, 0.5, 2.0, 1e-3, 3.0, 1e3])
SIGMA = np.array([1.0, 0.5, 2.0, 0.1, 1.0, 10.0])
THETA = np.array([0.5, 1.0, 1e-3, 60.0, 2.0, 1.0])


def _stats(dtype, rows=ROWS) -> SuffStats:
    return SuffStats(*(jnp.asarray(col, dtype) for col in rows.T))


def _kernels(theta):
    """Each kernel as a function of (stats, lam, sigma) only."""
    return {
        "b": jaxvi.b,
        "theta_star": jaxvi.theta_star,
        "elbo": lambda st, lam, sigma: jaxvi.elbo(theta, st, lam, sigma),
        "elbo_grad": lambda st, lam, sigma: jaxvi.elbo_grad(theta, st, lam, sigma),
    }


KERNELS = ["b", "theta_star", "elbo", "elbo_grad"]


def all_kernels(st, lam, sigma, theta):
    """The four kernels at once (one compilation covers them all)."""
    return {name: f(st, lam, sigma) for name, f in _kernels(theta).items()}


def _args(dtype):
    st, lam, sigma = _stats(dtype), jnp.asarray(LAM, dtype), jnp.asarray(SIGMA, dtype)
    return st, lam, sigma, jnp.asarray(THETA, dtype)


def _assert_close(got: dict, want: dict, rtol: float) -> None:
    for name in KERNELS:
        assert got[name].shape == want[name].shape, name
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=0, err_msg=name)


# float32: within 2 ulp, since XLA may fuse an elementwise chain differently in each program.
RTOL32 = 2.4e-7


def test_jit_and_vmap_agree_with_the_batched_call():
    """The batch eagerly, under jit, and as per-dataset scalars under vmap: the same numbers."""
    args = _args(jnp.float32)
    want = all_kernels(*args)
    _assert_close(jax.jit(all_kernels)(*args), want, RTOL32)
    _assert_close(jax.jit(jax.vmap(all_kernels))(*args), want, RTOL32)


def test_nested_vmap():
    """A (2, 3) batch mapped twice over, against the same batch called at once."""
    rows = ROWS.reshape(2, 3, 4)
    st = SuffStats(*(jnp.asarray(rows[..., k], jnp.float32) for k in range(4)))
    lam, sigma, theta = (jnp.asarray(a.reshape(2, 3), jnp.float32) for a in (LAM, SIGMA, THETA))
    got = jax.jit(jax.vmap(jax.vmap(all_kernels)))(st, lam, sigma, theta)
    assert got["elbo"].shape == (2, 3)
    _assert_close(got, jax.jit(all_kernels)(st, lam, sigma, theta), RTOL32)


@jax.jit
def _per_dataset_grads(lam, sigma, st, theta):
    """d/dλ, d/dσ of every kernel as a per-dataset scalar function, under vmap."""
    one = lambda lam_, sigma_, st_, theta_, name: _kernels(theta_)[name](st_, lam_, sigma_)
    return {
        name: jax.vmap(jax.grad(one, argnums=(0, 1)), (0, 0, 0, 0, None))(
            lam, sigma, st, theta, name
        )
        for name in KERNELS
    }


@jax.jit
def _grads_of_sums(lam, sigma, st, theta):
    """The same from the batch: the kernels are elementwise, so ∂Σ/∂λ_i = ∂f_i/∂λ_i."""
    return {
        name: jax.grad(lambda lam_, sigma_, f=f: f(st, lam_, sigma_).sum(), argnums=(0, 1))(
            lam, sigma
        )
        for name, f in _kernels(theta).items()
    }


def test_grad_under_jit_and_vmap():
    """Every kernel is differentiable in λ and σ, per dataset (n = 0 too), under jit and vmap."""
    st, lam, sigma, theta = _args(jnp.float32)
    per_dataset = _per_dataset_grads(lam, sigma, st, theta)
    of_sums = _grads_of_sums(lam, sigma, st, theta)
    for name in KERNELS:
        for wrt, g, h in zip(("lam", "sigma"), per_dataset[name], of_sums[name], strict=True):
            assert np.isfinite(g).all(), (name, wrt, g)
            np.testing.assert_allclose(g, h, rtol=RTOL32, atol=0, err_msg=f"{name} d/d{wrt}")


def test_per_dataset_lam_and_sigma_broadcast():
    """Arrays of λ and σ act per dataset; a scalar applies to every dataset."""
    st, lam, _, theta = _args(jnp.float32)
    f = jax.jit(all_kernels)
    per_dataset = f(st, lam, jnp.float32(2.0), theta)
    # The same numbers with λ_i broadcast into a full array, one dataset at a time.
    for i in range(len(ROWS)):
        full = f(st, jnp.full_like(lam, lam[i]), jnp.float32(2.0), theta)
        for name in KERNELS:
            np.testing.assert_allclose(per_dataset[name][i], full[name][i], rtol=RTOL32)
    # λ as a Python scalar, σ as an array: the scalar is weak and keeps float32.
    out = all_kernels(st, 1.0, jnp.asarray(SIGMA, jnp.float32), 1.0)
    for name in KERNELS:
        assert out[name].shape == (len(ROWS),) and out[name].dtype == jnp.float32, name


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_kept(dtype):
    for name, out in all_kernels(*_args(dtype)).items():
        assert out.dtype == dtype, name
    # Python scalars for λ, σ and θ do not widen float32.
    for name, out in all_kernels(_stats(dtype), 1.0, 1.0, 1.0).items():
        assert out.dtype == dtype, name


def test_integer_statistics_are_promoted():
    """Integer statistics become the default float dtype (float32 unless x64 is on)."""
    rows = np.array([[0, 0, 0, 0], [1, 2, 4, 0], [3, 6, 14, 1], [4, -8, 30, -2]])
    ints = SuffStats(*(jnp.asarray(col, jnp.int32) for col in rows.T))
    floats = SuffStats(*(jnp.asarray(col, jnp.asarray(1.0).dtype) for col in rows.T))
    f = jax.jit(all_kernels)
    got, want = f(ints, 1.0, 1.0, 1.0), f(floats, 1.0, 1.0, 1.0)
    for name in KERNELS:
        assert got[name].dtype == jnp.asarray(1.0).dtype
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.float64
def test_float32_stats_with_the_default_shift_stay_float32_under_x64():
    """Under jit a Python scalar (the default ``shift=0.0``) is a weakly typed float64; it must
    not widen float32 statistics when x64 is on (a notebook ran float32 in float64 this way)."""
    one = jnp.ones(3, jnp.float32)
    st = SuffStats(one, 2 * one, 4 * one)  # shift left at its default, 0.0
    for name, out in all_kernels(st, jnp.float32(1.0), jnp.float32(1.0), jnp.float32(1.0)).items():
        assert out.dtype == jnp.float32, name
    assert jaxvi.solve(st).elbo.dtype == jnp.float32
    assert jaxvi.posterior(st).mean.dtype == jnp.float32


@pytest.mark.float64
def test_float64_agrees_with_float32():
    got64 = all_kernels(*_args(jnp.float64))
    want32 = all_kernels(*_args(jnp.float32))
    for name in KERNELS:
        assert got64[name].dtype == jnp.float64
        # Only float32's own rounding separates them; elbo_grad is nowhere near 0 here.
        np.testing.assert_allclose(
            got64[name], np.asarray(want32[name], np.float64), rtol=1e-5, err_msg=name
        )


def test_count_compilations_sees_a_compilation():
    x = jnp.arange(7.0)
    with count_compilations() as log:
        jax.jit(lambda y: y * 3 + 1)(x).block_until_ready()
    assert log.count == 1, log.names


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_second_call_with_the_same_shapes_compiles_nothing(mode):
    f = jax.jit(all_kernels) if mode == "jit" else all_kernels
    args = _args(jnp.float32)
    # Other values, same shapes and dtypes; made before counting (making them compiles too).
    other = jax.tree.map(lambda x: x * 1.5 + 0.25, args)
    jax.block_until_ready(f(*args))
    with count_compilations() as log:
        jax.block_until_ready(f(*other))
    assert log.count == 0, log.names


def test_invalid_dataset_gives_nan_in_its_own_row_only():
    """λ ≤ 0, σ ≤ 0, NaN data or NaN λ: NaN in that row; other rows bit for bit as without it."""
    st, lam, sigma, theta = _args(jnp.float32)
    lam_bad = lam.at[1].set(0.0).at[2].set(-1.0)
    sigma_bad = sigma.at[3].set(0.0).at[4].set(-2.0)
    st_bad = st._replace(sum_x=st.sum_x.at[5].set(jnp.nan))  # NaN data
    f = jax.jit(all_kernels)
    got = f(st_bad, lam_bad, sigma_bad, theta)
    clean = f(st, lam, sigma, theta)
    for name in KERNELS:
        assert np.isnan(got[name][1:]).all(), (name, got[name])
        np.testing.assert_array_equal(got[name][0], clean[name][0], err_msg=name)
    # NaN λ too, in a row of its own.
    got = f(st, lam.at[2].set(jnp.nan), sigma, theta)
    for name in KERNELS:
        assert np.isnan(got[name][2]), name
        np.testing.assert_array_equal(np.delete(got[name], 2), np.delete(clean[name], 2))


def test_empty_dataset_is_the_prior():
    """n = 0: B = −λ, θ* = λ exactly, ELBO(θ*) = 0 up to rounding, and at another θ the ELBO
    is −KL(Exp(θ) ‖ Exp(λ)) = log(λ/θ) + 1 − λ/θ."""
    lam = jnp.asarray([1e-4, 0.3, 1.0, 7.0, 1e4, 1.0], jnp.float32)
    st = SuffStats(*(jnp.zeros(6, jnp.float32),) * 4)
    theta = lam.at[-1].set(2.0)
    out = jax.jit(all_kernels)(st, lam, 1.0, theta)
    np.testing.assert_array_equal(out["b"], -lam)
    np.testing.assert_array_equal(out["theta_star"], lam)
    value = np.asarray(out["elbo"], np.float64)
    eps = float(jnp.finfo(jnp.float32).eps)
    log_lam = np.abs(np.log(np.asarray(lam, np.float64)))
    assert (np.abs(value[:-1]) <= 4 * eps * (2 + log_lam[:-1])).all(), value
    np.testing.assert_allclose(value[-1], np.log(0.5) + 1 - 0.5, rtol=1e-6)


def test_theta_star_is_the_maximiser():
    """The ELBO rises towards θ* from below and falls beyond it (its gradient changes sign)."""
    st, lam, sigma, _ = _args(jnp.float32)
    th = jaxvi.theta_star(st, lam, sigma)
    assert (jaxvi.elbo_grad(th * 0.9, st, lam, sigma) > 0).all()
    assert (jaxvi.elbo_grad(th * 1.1, st, lam, sigma) < 0).all()


def test_kernels_reject_non_stats():
    with pytest.raises(TypeError, match="SuffStats"):
        jaxvi.theta_star((1.0, 2.0, 3.0))
