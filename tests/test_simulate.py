"""``simulate``: shapes, sizes, padding, the generative model's moments, and its errors.

Moment checks compare a sample statistic with its exact value within 5 standard errors of that
statistic (computed from the known distribution, not estimated). Keys are fixed, so each check
is deterministic; a wrong rate (λ in place of 1/λ) or a wrong noise scale (σ² in place of σ)
misses by hundreds of SE at these sample sizes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi
from jaxvi import Padded

NUM_SE = 5.0


def _assert_moment(name: str, sample: float, exact: float, se: float) -> None:
    assert abs(sample - exact) <= NUM_SE * se, (
        f"{name}: sample {sample:.6g} vs exact {exact:.6g}, off by "
        f"{abs(sample - exact) / se:.1f} SE (allowed {NUM_SE})"
    )


def _valid(data: Padded) -> np.ndarray:
    lengths = np.asarray(data.lengths)
    return np.arange(data.x.shape[1])[None, :] < lengths[:, None]


# Most small checks share one shape, (D, n_max) = (50, 5): a new shape costs a compilation.
D = 50


def test_int_sizes():
    data, z = jaxvi.simulate(jax.random.key(0), D, sizes=5)
    assert isinstance(data, Padded)
    assert data.x.shape == (D, 5) and z.shape == (D,)
    assert data.lengths.dtype == jnp.int32 and (np.asarray(data.lengths) == 5).all()
    assert data.x.dtype == jnp.float32 and z.dtype == jnp.float32


def test_per_dataset_sizes():
    sizes = np.arange(D) % 6  # 0..5, as int64
    data, z = jaxvi.simulate(jax.random.key(2), D, sizes=sizes)
    assert data.x.shape == (D, 5) and z.shape == (D,)
    assert data.lengths.tolist() == sizes.tolist()
    assert jaxvi.suff_stats(data.x, data.lengths).n.tolist() == sizes.tolist()


def test_edge_sizes():
    data, _ = jaxvi.simulate(jax.random.key(3), D, sizes=(5, 5))
    assert data.lengths.tolist() == [5] * D
    data, z = jaxvi.simulate(jax.random.key(3), D, sizes=0)
    assert data.x.shape == (D, 0) and z.shape == (D,)
    data, z = jaxvi.simulate(jax.random.key(3), 0)
    assert data.x.shape == (0, 64) and data.lengths.shape == (0,) and z.shape == (0,)


# One large draw serves every distribution check: λ alternates between two rates and σ
# between two scales (per-dataset arrays), and sizes run over LOW..HIGH.
NUM = 60_000
LAMS = (0.5, 4.0)
SIGMAS = (0.1, 3.0)
LOW, HIGH = 0, 8


@pytest.fixture(scope="module")
def big():
    idx = np.arange(NUM)
    lam = np.where(idx % 2 == 0, *LAMS).astype(np.float32)
    sigma = np.where(idx % 3 == 0, *SIGMAS).astype(np.float32)
    data, z = jaxvi.simulate(jax.random.key(1), NUM, lam=lam, sigma=sigma, sizes=(LOW, HIGH))
    return data, np.asarray(z, np.float64), lam, sigma


def test_range_sizes_are_inclusive_and_uniform(big):
    data, _, _, _ = big
    assert data.x.shape == (NUM, HIGH)  # padded to the largest possible size
    counts = np.bincount(np.asarray(data.lengths), minlength=HIGH + 1)
    assert counts.size == HIGH + 1 and (counts > 0).all()  # both ends reached, nothing beyond
    p = 1 / (HIGH - LOW + 1)
    for size, count in enumerate(counts):
        _assert_moment(f"count of size {size}", count, NUM * p, np.sqrt(NUM * p * (1 - p)))


def test_padding_is_zero_and_data_is_not(big):
    data, _, _, _ = big
    x, valid = np.asarray(data.x), _valid(data)
    assert (x[~valid] == 0).all()
    assert (x[valid] != 0).all() and np.isfinite(x).all()


@pytest.mark.parametrize("lam", LAMS)
def test_z_true_is_exponential_with_its_own_lam(big, lam):
    _, z, lams, _ = big
    z = z[lams == lam]
    num = z.size
    assert (z >= 0).all()
    # Exponential(λ): mean 1/λ, variance 1/λ², fourth central moment 9/λ⁴, P(z > 1/λ) = 1/e.
    _assert_moment("mean", z.mean(), 1 / lam, (1 / lam) / np.sqrt(num))
    _assert_moment("variance", z.var(), 1 / lam**2, np.sqrt(8 / num) / lam**2)
    p = np.exp(-1)
    _assert_moment("P(z > 1/λ)", (z > 1 / lam).mean(), p, np.sqrt(p * (1 - p) / num))


@pytest.mark.parametrize("sigma", SIGMAS)
def test_x_given_z_is_normal_with_its_own_sigma(big, sigma):
    data, z, _, sigmas = big
    valid = _valid(data) & (sigmas == sigma)[:, None]
    resid = (np.asarray(data.x, np.float64) - z[:, None])[valid]
    num = resid.size
    # Normal(0, σ²): mean 0 (SE σ/√M), variance σ² (SE σ²√(2/M)), P(|r| < σ) = 0.6827.
    _assert_moment("mean", resid.mean(), 0.0, sigma / np.sqrt(num))
    _assert_moment("variance", resid.var(), sigma**2, sigma**2 * np.sqrt(2 / num))
    p = 0.6826894921370859
    _assert_moment("P(|r| < σ)", (np.abs(resid) < sigma).mean(), p, np.sqrt(p * (1 - p) / num))


def test_scalar_parameters_equal_constant_arrays():
    key = jax.random.key(12)
    data, z = jaxvi.simulate(key, D, lam=2.0, sigma=0.5, sizes=(1, 5))
    ref, zref = jaxvi.simulate(key, D, lam=np.full(D, 2.0), sigma=np.full(D, 0.5), sizes=(1, 5))
    np.testing.assert_array_equal(data.x, ref.x)
    np.testing.assert_array_equal(z, zref)


@pytest.mark.parametrize(
    "dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]
)
def test_dtype(dtype):
    data, z = jaxvi.simulate(jax.random.key(8), D, sizes=5, dtype=dtype)
    assert data.x.dtype == dtype and z.dtype == dtype
    # Without dtype, the data follow λ's and σ's dtype.
    data, z = jaxvi.simulate(jax.random.key(8), D, lam=jnp.ones(D, dtype), sizes=5)
    assert data.x.dtype == dtype and z.dtype == dtype


def test_deterministic_per_key():
    a, za = jaxvi.simulate(jax.random.key(9), D, sizes=(1, 5))
    b, zb = jaxvi.simulate(jax.random.key(9), D, sizes=(1, 5))
    c, zc = jaxvi.simulate(jax.random.key(10), D, sizes=(1, 5))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_array_equal(za, zb)
    assert not np.array_equal(za, zc) and not np.array_equal(a.lengths, c.lengths)


def test_jit_over_key():
    data, z = jax.jit(lambda k: jaxvi.simulate(k, D, sizes=(1, 5)))(jax.random.key(11))
    ref, zref = jaxvi.simulate(jax.random.key(11), D, sizes=(1, 5))
    np.testing.assert_array_equal(data.lengths, ref.lengths)
    np.testing.assert_allclose(data.x, ref.x, rtol=1e-6)
    np.testing.assert_allclose(z, zref, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": -1}, "sizes must be >= 0"),
        ({"sizes": (5, 2)}, r"0 <= low <= high"),
        ({"sizes": (-1, 2)}, r"0 <= low <= high"),
        ({"sizes": (1.5, 3)}, "two integers"),
        ({"sizes": (1, 2, 3)}, "two integers"),
        ({"sizes": np.array([1, 2])}, r"shape \(3,\)"),
        ({"sizes": np.array([1.0, 2.0, 3.0])}, "dtype float64"),
        ({"sizes": np.array([1, -2, 3])}, "dataset 1 has size -2"),
        ({"lam": np.ones(2)}, r"lam must be a scalar or one value per dataset"),
        ({"sigma": np.ones((3, 1))}, r"sigma must be a scalar or one value per dataset"),
        ({"dtype": jnp.int32}, "float dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxvi.simulate(jax.random.key(0), 3, **kwargs)


@pytest.mark.parametrize("num", [-1, 2.0, True])
def test_bad_num_datasets(num):
    with pytest.raises(ValueError, match="num_datasets"):
        jaxvi.simulate(jax.random.key(0), num)
