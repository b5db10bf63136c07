"""Padded slots are ignored, in values and in gradients, whatever they hold (DESIGN.md §1, trap 7).

``suff_stats(x, lengths)`` and ``suff_stats(x, mask=...)`` must give the same statistics
when the padding holds NaN, ±inf or 1e38 as when it holds zeros, and ``jax.grad`` through
them must be finite, and exactly 0 in the padded slots, under ``jax.debug_nans(True)``.
The property test checks that results do not depend on how much padding there is, nor on the
order of the values within a dataset.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxvi

FILLS = np.array([np.nan, np.inf, -np.inf, 1e38, -3.4e38, np.nan], np.float32)
ROWS = [[1.5, 2.0, -3.0], [5.0], [], [0.25, 0.5, 0.75, 1.0, 1.25], [1000.0, 1001.0]]
N_MAX = 6


def _padded(fill, rows=ROWS, n_max=N_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Rows padded with ``fill`` (a scalar, or one value per slot, cycled)."""
    x = np.resize(np.asarray(fill, np.float32), (len(rows), n_max))
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
    return x, np.array([len(r) for r in rows], np.int32)


def _loss(x, lengths, mask=None):
    """A scalar through every closed-form kernel, so its gradient visits each of them."""
    stats = jaxvi.suff_stats(x, lengths, mask=mask)
    theta = jaxvi.theta_star(stats, 1.5, 0.75)
    return (
        jaxvi.elbo(theta, stats, 1.5, 0.75) + jaxvi.b(stats, 1.5, 0.75) + jaxvi.elbo(2.0, stats)
    ).sum()


# Module-level, so that each is traced and compiled once for the whole file.
GRADS = {"eager": jax.grad(_loss), "jit": jax.jit(jax.grad(_loss))}
SUFF_STATS = {"eager": jaxvi.suff_stats, "jit": jax.jit(jaxvi.suff_stats)}


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_padding_does_not_change_the_statistics(mode):
    """Every padded slot holds garbage: NaN, ±inf, 1e38, −3.4e38, all mixed."""
    clean_x, lengths = _padded(0.0)
    dirty_x, _ = _padded(FILLS)
    clean = SUFF_STATS[mode](jnp.asarray(clean_x), jnp.asarray(lengths))
    dirty = SUFF_STATS[mode](jnp.asarray(dirty_x), jnp.asarray(lengths))
    for name, c, d in zip(clean._fields, clean, dirty, strict=True):
        np.testing.assert_array_equal(np.asarray(d), np.asarray(c), err_msg=name)
    assert np.asarray(dirty.n).tolist() == [len(r) for r in ROWS]
    # The empty row is the empty dataset: nothing summed, shift 0.
    assert [float(f[2]) for f in dirty] == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_gradients_ignore_padding_under_debug_nans(mode):
    clean_x, lengths = _padded(0.0)
    dirty_x, _ = _padded(FILLS)
    valid = np.arange(N_MAX) < lengths[:, None]
    # Built before debug_nans: moving NaN to the device is itself flagged under it.
    dirty, clean, lengths = jnp.asarray(dirty_x), jnp.asarray(clean_x), jnp.asarray(lengths)
    with jax.debug_nans(True):
        g = np.asarray(GRADS[mode](dirty, lengths))
    g_clean = np.asarray(GRADS[mode](clean, lengths))
    assert np.isfinite(g).all(), g
    assert (g[~valid] == 0).all(), g
    np.testing.assert_array_equal(g, g_clean)
    assert (g[valid] != 0).all(), g


@jax.jit
def _masked_stats_and_grad(x, mask):
    return jaxvi.suff_stats(x, mask=mask), jax.grad(_loss)(x, None, mask)


def test_mask_ignores_holes_in_values_and_gradients():
    """With ``mask``, invalid slots may sit anywhere, the first slot included."""
    x = np.resize(FILLS, (2, 8))
    x[0, [1, 3]] = [2.0, -1.0]
    mask = np.zeros((2, 8), bool)
    mask[0, [1, 3]] = True
    x, mask = jnp.asarray(x), jnp.asarray(mask)
    with jax.debug_nans(True):
        stats, g = _masked_stats_and_grad(x, mask)
    assert np.asarray(stats.n).tolist() == [2.0, 0.0]
    assert np.asarray(stats.total_sum()).tolist() == [1.0, 0.0]
    assert np.asarray(stats.total_sum_sq()).tolist() == [5.0, 0.0]
    g = np.asarray(g)
    assert np.isfinite(g).all() and (g[~np.asarray(mask)] == 0).all(), g
    assert (g[np.asarray(mask)] != 0).all(), g


def test_lengths_and_mask_combine():
    x, lengths = _padded(np.nan)
    mask = np.ones_like(x, bool)
    mask[0, 1] = False  # drops 2.0 from the first dataset
    stats = jaxvi.suff_stats(jnp.asarray(x), jnp.asarray(lengths), mask=jnp.asarray(mask))
    assert np.asarray(stats.n).tolist() == [2.0, 1.0, 0.0, 5.0, 2.0]
    assert float(stats.total_sum()[0]) == -1.5


# -- property: invariance to the padding amount and to the order within a dataset ----------

WIDTHS = (16, 24, 40)  # few distinct shapes, so jit compiles each once across all examples
NUM_DATASETS = 4
values = st.floats(-100, 100, width=32, allow_nan=False, allow_subnormal=False)
datasets = st.lists(st.lists(values, max_size=WIDTHS[0]), min_size=NUM_DATASETS, max_size=4)


@jax.jit
def _summary(x, lengths, mask):
    stats = jaxvi.suff_stats(x, lengths, mask=mask)
    theta = jaxvi.theta_star(stats, 0.5, 2.0)
    return stats.n, stats.total_sum(), stats.total_sum_sq(), stats.centred_sum_sq(), theta


FLUSH = 1000 * float(np.finfo(np.float32).tiny)


@settings(max_examples=25, deadline=None)
@given(rows=datasets, seed=st.integers(0, 2**32 - 1))
def test_results_invariant_to_padding_amount_and_order(rows, seed):
    """float32 tolerance: the sums within 1e-5 of the sum of their terms' magnitudes (Σ|x|,
    Σx², n·range² for the centred sum: ≈ 80 ulp, above the ≤ 16-term worst case). θ* is
    compared with float64: B within 1e-5·(Σ|x|/v + λ) (the contract's scale for B) moves θ*
    by at most θ*·ΔB/√(B² + 8a), plus 1e-6 relative for θ*'s own rounding."""
    rng = np.random.default_rng(seed)
    variants = []
    for width in WIDTHS:
        x, lengths = _padded(np.nan, rows, width)
        variants.append((x, lengths, None))
    shuffled = [list(rng.permutation(np.asarray(r, np.float32))) for r in rows]
    variants.append((*_padded(np.nan, shuffled, WIDTHS[0]), None))
    # Values scattered over a wider row, the holes marked by the mask.
    x = np.full((NUM_DATASETS, WIDTHS[1]), np.inf, np.float32)
    mask = np.zeros_like(x, bool)
    for i, r in enumerate(rows):
        slots = np.sort(rng.choice(WIDTHS[1], len(r), replace=False))
        x[i, slots], mask[i, slots] = r, True
    variants.append((x, np.full(NUM_DATASETS, WIDTHS[1], np.int32), mask))

    data = [np.asarray(r, np.float64) for r in rows]
    n = np.array([len(r) for r in data], np.float64)
    total = np.array([r.sum() for r in data])
    total_sq = np.array([(r * r).sum() for r in data])
    centred = np.array([((r - r.mean()) ** 2).sum() if len(r) else 0.0 for r in data])
    abs_sum = np.array([np.abs(r).sum() for r in data])
    spread = np.array([len(r) * np.ptp(r) ** 2 if len(r) else 0.0 for r in data])
    lam, v = 0.5, 4.0  # as in _summary
    bb = total / v - lam
    root = np.sqrt(bb * bb + 8 * n / v)
    conjugate = 4 * (n / v) / np.where(bb > 0, bb + root, 1)  # no cancellation for B > 0
    theta_exact = np.where(bb > 0, conjugate, (root - bb) / 2)
    theta_tol = theta_exact * (1e-5 * (abs_sum / v + lam) / root + 1e-6)
    for x, lengths, mask in variants:
        out = _summary(jnp.asarray(x), jnp.asarray(lengths), None if mask is None else mask)
        got_n, got_total, got_sq, got_centred, theta = (np.asarray(o, np.float64) for o in out)
        np.testing.assert_array_equal(got_n, n)
        # Squares below ~1000x the smallest normal may flush to zero (DESIGN §1).
        assert (np.abs(got_total - total) <= 1e-5 * abs_sum + FLUSH).all(), (got_total, total)
        assert (np.abs(got_sq - total_sq) <= 1e-5 * total_sq + FLUSH).all(), (got_sq, total_sq)
        assert (np.abs(got_centred - centred) <= 1e-5 * spread + FLUSH).all(), (
            got_centred,
            centred,
        )
        assert (np.abs(theta - theta_exact) <= theta_tol).all(), (theta, theta_exact)
