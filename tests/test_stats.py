"""Sufficient statistics: ``suff_stats`` (padded) and ``suff_stats_ragged`` (back to back).

They agree with each other and with float64 NumPy; the per-dataset shift keeps the spread of
data whose mean is far from zero (DESIGN.md §1, trap 6); they work under jit, vmap and grad,
keep dtypes, promote integers, compile once per shape, and reject bad shapes with a clear
error. Padding is in ``test_padding.py``.
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
# Jitted once for the file: one compilation per shape instead of one per primitive.
SUFF_STATS = jax.jit(jaxvi.suff_stats)
SUFF_STATS_RAGGED = jax.jit(jaxvi.suff_stats_ragged)


def _ragged(rng, sizes, loc=0.0, scale=1.0, dtype=np.float32):
    rows = [(loc + scale * rng.standard_normal(k)).astype(dtype) for k in sizes]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    values = np.concatenate(rows) if rows else np.zeros(0, dtype)
    return rows, values, offsets


def _pad(rows, n_max, fill=np.nan):
    x = np.full((len(rows), n_max), fill, rows[0].dtype if rows else np.float32)
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
    return x, np.array([len(r) for r in rows], np.int32)


def _exact(rows):
    """(n, Σx, Σx², Σ(x − x̄)²) in float64."""
    out = []
    for r in rows:
        r = np.asarray(r, np.float64)
        c = ((r - r.mean()) ** 2).sum() if len(r) else 0.0
        out.append((len(r), r.sum(), (r * r).sum(), c))
    return np.array(out).T


def _check(stats: SuffStats, rows, rtol: float) -> None:
    """Every statistic against float64, relative to the sum of its terms' magnitudes."""
    n, total, total_sq, centred = _exact(rows)
    abs_sum = np.array([np.abs(np.asarray(r, np.float64)).sum() for r in rows])
    np.testing.assert_array_equal(np.asarray(stats.n), n)
    got = lambda x: np.asarray(x, np.float64)
    assert (np.abs(got(stats.total_sum()) - total) <= rtol * abs_sum).all()
    assert (np.abs(got(stats.total_sum_sq()) - total_sq) <= rtol * total_sq).all()
    assert (np.abs(got(stats.centred_sum_sq()) - centred) <= rtol * centred).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_padded_and_ragged_agree_with_float64(dtype):
    """Empty datasets first, last and in between; float32 within 1e-6 of each sum's scale."""
    rng = np.random.default_rng(0)
    sizes = [0, 1, 2, 7, 0, 33, 64, 5, 0]
    rows, values, offsets = _ragged(rng, sizes, loc=3.0, scale=2.0, dtype=dtype)
    rtol = 1e-6 if dtype == jnp.float32 else 1e-13
    ragged = SUFF_STATS_RAGGED(jnp.asarray(values), jnp.asarray(offsets))
    x, lengths = _pad(rows, 64)
    padded = SUFF_STATS(jnp.asarray(x), jnp.asarray(lengths))
    for stats in (ragged, padded):
        assert all(f.dtype == dtype for f in stats), stats
        _check(stats, rows, rtol)
    # Both shift by the first value, so their shifted sums agree too.
    np.testing.assert_array_equal(ragged.shift, padded.shift)
    np.testing.assert_array_equal(ragged.n, padded.n)
    np.testing.assert_allclose(ragged.sum_x, padded.sum_x, rtol=rtol, atol=rtol * 64 * 5)


def test_full_rows_and_mask_paths():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 10)).astype(np.float32)
    full = SUFF_STATS(jnp.asarray(x))
    _check(full, list(x), 1e-6)
    np.testing.assert_array_equal(full.shift, x[:, 0])
    masked = SUFF_STATS(jnp.asarray(x), mask=jnp.ones(x.shape, bool))
    for f, g in zip(full, masked, strict=True):
        np.testing.assert_allclose(f, g, rtol=1e-6)


def test_ragged_without_values():
    st = jaxvi.suff_stats_ragged(jnp.zeros(0, jnp.float32), jnp.zeros(4, jnp.int32))
    assert np.asarray(st.n).tolist() == [0.0, 0.0, 0.0]
    assert all(np.asarray(f).tolist() == [0.0] * 3 for f in st)


@pytest.mark.parametrize("path", ["padded", "full rows", "ragged"])
def test_shift_keeps_the_spread_far_from_zero(path):
    """Mean 1000, sd 1, N = 1e5 in float32: Σ(x − x̄)² within 1e-6 of float64 (a float32 Σx²
    without the shift gets it 10-20% wrong: checked below, so the test can tell)."""
    rng = np.random.default_rng(2)
    rows, values, offsets = _ragged(rng, [100_000, 100_000], loc=1000.0, scale=1.0)
    if path == "padded":
        stats = SUFF_STATS(*(jnp.asarray(a) for a in _pad(rows, 100_000)))
    elif path == "full rows":  # both datasets fill their row: the lengths=None path
        stats = SUFF_STATS(jnp.asarray(_pad(rows, 100_000)[0]))
    else:
        stats = SUFF_STATS_RAGGED(jnp.asarray(values), jnp.asarray(offsets))
    _, _, _, centred = _exact(rows)
    got = np.asarray(stats.centred_sum_sq(), np.float64)
    np.testing.assert_allclose(got, centred, rtol=1e-6)
    mean = np.array([r.astype(np.float64).mean() for r in rows])
    np.testing.assert_allclose(np.asarray(stats.mean(), np.float64), mean, rtol=1e-7)
    unshifted = SuffStats(stats.n, stats.total_sum(), stats.total_sum_sq())
    naive = np.asarray(unshifted.centred_sum_sq(), np.float64)
    assert (np.abs(naive / centred - 1) > 1e-3).all(), naive / centred


@pytest.mark.parametrize("length", [1, 31, 64, 65, 95, 100_007])
def test_two_output_sums_over_pieces_and_their_rest(length):
    """(Σy, Σy²) by pieces of PIECE values plus the rest, against float64, within the error
    of a tree sum (2·ε·log2(2L) of the terms' sum): the lengths hit one run (up to 2·PIECE),
    two pieces and a rest of 1, a rest of 31, and a long row. A one-by-one sum of the long
    row breaks that bound (checked by setting PIECE past the length)."""
    from jaxvi._stats.padded import PIECE, sum_and_sum_sq

    assert PIECE == 32  # the lengths above are chosen around it
    rng = np.random.default_rng(length)
    y = (rng.standard_normal((3, length)) + np.array([[0.0], [1.0], [50.0]])).astype(np.float32)
    s, s2 = jax.jit(sum_and_sum_sq)(jnp.asarray(y))
    y64 = y.astype(np.float64)
    eps = np.finfo(np.float32).eps
    bound = lambda terms: 2 * eps * np.log2(2 * length) * terms.sum(-1)
    assert (np.abs(np.asarray(s, np.float64) - y64.sum(-1)) <= bound(np.abs(y64))).all()
    assert (np.abs(np.asarray(s2, np.float64) - (y64 * y64).sum(-1)) <= bound(y64 * y64)).all()
    # Its derivatives are exact in closed form: d(Σy) = Σdy and d(Σy²) = Σ2y·dy.
    t = rng.standard_normal(y.shape).astype(np.float32)
    _, (ds, ds2) = jax.jvp(sum_and_sum_sq, (jnp.asarray(y),), (jnp.asarray(t),))
    np.testing.assert_allclose(ds, t.sum(-1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ds2, (2 * y * t).sum(-1), rtol=1e-4, atol=1e-2)
    a, b = np.float32(0.5), np.float32(-2.0)
    grad = jax.grad(lambda v: a * sum(sum_and_sum_sq(v)[0]) + b * sum(sum_and_sum_sq(v)[1]))
    np.testing.assert_allclose(grad(jnp.asarray(y)), a + 2 * b * y, rtol=1e-6)


def test_suff_stats_stats_methods():
    st = SuffStats(jnp.asarray([0.0, 2.0]), jnp.asarray([0.0, 1.0]), jnp.asarray([0.0, 5.0]), 3.0)
    assert np.asarray(st.total_sum()).tolist() == [0.0, 7.0]  # 1 + 2·3
    assert np.asarray(st.total_sum_sq()).tolist() == [0.0, 29.0]  # 5 + 3·(2 + 6)
    assert np.asarray(st.centred_sum_sq()).tolist() == [0.0, 4.5]  # 5 − 1/2
    assert float(st.mean()[1]) == 3.5


def test_lengths_outside_the_row_are_clipped():
    # n is taken from the lengths, not counted: it must still match the slots summed.
    x = jnp.asarray([[1.0, 2.0, 4.0], [3.0, jnp.nan, 5.0], [2.0, 2.0, 7.0], [6.0, 1.0, 1.0]])
    st = jaxvi.suff_stats(x, jnp.asarray([-2, 0, 3, 9]))
    np.testing.assert_array_equal(st.n, [0.0, 0.0, 3.0, 3.0])
    np.testing.assert_array_equal(st.total_sum(), [0.0, 0.0, 11.0, 8.0])
    np.testing.assert_array_equal(st.total_sum_sq(), [0.0, 0.0, 57.0, 38.0])


def test_gradients_with_respect_to_the_data():
    """The shift is held out of gradients, yet ∂Σx/∂x = 1 and ∂Σx²/∂x = 2x (the shift cancels)."""
    x = jnp.asarray([[1.0, 2.0, 4.0, 0.0], [3.0, -1.0, 0.0, 0.0]])
    lengths = jnp.asarray([3, 2])
    valid = np.arange(4) < np.asarray(lengths)[:, None]

    def sums(x_):
        st = jaxvi.suff_stats(x_, lengths)
        return st.total_sum().sum(), st.total_sum_sq().sum()

    d_sum, d_sq = jax.jit(jax.jacrev(sums))(x)
    np.testing.assert_array_equal(d_sum, valid.astype(np.float32))
    np.testing.assert_array_equal(d_sq, np.where(valid, 2 * np.asarray(x), 0))
    ragged = lambda v: jaxvi.suff_stats_ragged(v, jnp.asarray([0, 3, 5])).total_sum_sq().sum()
    values = jnp.asarray([1.0, 2.0, 4.0, 3.0, -1.0])
    np.testing.assert_array_equal(jax.jit(jax.grad(ragged))(values), 2 * np.asarray(values))


def test_vmap_and_nested_vmap():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    lengths = np.array([[5, 0, 2], [1, 4, 3]], np.int32)
    want = SUFF_STATS(jnp.asarray(x), jnp.asarray(lengths))
    got = jax.jit(jax.vmap(jax.vmap(jaxvi.suff_stats)))(jnp.asarray(x), jnp.asarray(lengths))
    for w, g in zip(want, got, strict=True):
        assert g.shape == (2, 3)
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes(dtype):
    x = jnp.asarray([[1.0, 2.0], [3.0, 4.0]], dtype)
    assert all(f.dtype == dtype for f in SUFF_STATS(x))
    assert all(f.dtype == dtype for f in SUFF_STATS_RAGGED(x[0], jnp.asarray([0, 2])))


def test_integer_data_is_promoted():
    default = jnp.asarray(1.0).dtype
    st = SUFF_STATS(jnp.asarray([[1, 2, 3]], jnp.int32), jnp.asarray([2]))
    assert all(f.dtype == default for f in st)
    assert np.asarray(st.total_sum()).tolist() == [3.0]
    st = SUFF_STATS_RAGGED(np.array([1, 2, 3], np.int32), np.array([0, 1, 3]))
    assert all(f.dtype == default for f in st)
    assert np.asarray(st.total_sum_sq()).tolist() == [1.0, 13.0]


def test_second_call_compiles_nothing():
    rng = np.random.default_rng(4)
    padded, ragged = SUFF_STATS, SUFF_STATS_RAGGED
    inputs = [
        (jnp.asarray(rng.standard_normal((4, 8)), jnp.float32), jnp.asarray([8, 0, 3, 1]))
        for _ in range(2)
    ]
    flat = [
        (jnp.asarray(rng.standard_normal(12), jnp.float32), jnp.asarray(o))
        for o in ([0, 5, 5, 12], [0, 0, 7, 12])
    ]
    jax.block_until_ready((padded(*inputs[0]), ragged(*flat[0])))
    with count_compilations() as log:
        jax.block_until_ready((padded(*inputs[1]), ragged(*flat[1])))
    assert log.count == 0, log.names


def test_bad_shapes_raise_clear_errors():
    x = jnp.zeros((3, 4))
    with pytest.raises(ValueError, match=r"lengths has shape \(2,\), expected the batch shape"):
        jaxvi.suff_stats(x, jnp.asarray([1, 2]))
    with pytest.raises(ValueError, match="mask has shape"):
        jaxvi.suff_stats(x, mask=jnp.ones((3, 5), bool))
    with pytest.raises(ValueError, match="at least one axis"):
        jaxvi.suff_stats(jnp.float32(1.0))
    with pytest.raises(ValueError, match=r"values must be \(M,\) and offsets \(D\+1,\)"):
        jaxvi.suff_stats_ragged(x, jnp.asarray([0, 12]))


@pytest.mark.parametrize("seed", [5, 6])
def test_ragged_block_structure_is_exact(seed):
    """Integers keep every sum exact, so any mix-up of the blocked segment sum shows bit for
    bit: runs crossing block boundaries, empty datasets anywhere, one long dataset."""
    rng = np.random.default_rng(seed)
    sizes = [0, 31, 32, 33, 1, 0, 0, 1000, 2, 5000, 0, 64, 3]
    sizes = list(rng.permutation(sizes))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    values = rng.integers(-8, 9, offsets[-1]).astype(np.float32)
    st = SUFF_STATS_RAGGED(jnp.asarray(values), jnp.asarray(offsets))
    rows = np.split(values, offsets[1:-1])
    n, total, total_sq, _ = _exact(rows)
    np.testing.assert_array_equal(st.n, n)
    np.testing.assert_array_equal(st.total_sum(), total)
    np.testing.assert_array_equal(st.total_sum_sq(), total_sq)
