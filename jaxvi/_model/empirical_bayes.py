r"""Empirical Bayes: the type-II maximum-likelihood prior rate over many datasets.

The datasets share one prior ``z_d ~ Exponential(λ)``. Their total exact log evidence

.. math::  F(\eta) = \sum_d \log p(x_d \mid \lambda = e^\eta, \sigma_d)

is maximised over ``η = log λ`` by safeguarded Newton steps. ``F`` need not be concave in η
(``log ∫ e^{−λz} L(z) dz`` is convex in λ), so each step is taken inside a trust radius in η,
a step that lowers ``F`` is rejected and the radius shrunk, and where ``F'' ≥ 0`` the step is
an ascent step of the full radius instead of Newton's.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvi._model.dtypes import float_dtype
from jaxvi._model.exact import log_evidence
from jaxvi._model.statistics import SuffStats

__all__ = ["estimate_lam"]


class _State(NamedTuple):
    step_count: jax.Array
    eta: jax.Array  # log λ
    value: jax.Array  # F(η)
    grad: jax.Array  # F'(η)
    hess: jax.Array  # F''(η)
    radius: jax.Array  # trust radius in η
    step: jax.Array  # the next trial is eta + step
    done: jax.Array


def _initial_lam(stats: SuffStats, dtype) -> jax.Array:
    """The moment estimate ``1/mean(x̄)`` (E x̄ = E z = 1/λ), with x̄ clipped at a small floor.

    A dataset's mean can be ≤ 0 through noise; the clip keeps the start finite. Empty datasets
    are left out; with none left, λ₀ = 1.
    """
    n = jnp.asarray(stats.n, dtype)
    has_data = n > 0
    xbar = jnp.asarray(stats.shift, dtype) + jnp.asarray(stats.sum_x, dtype) / jnp.where(
        has_data, n, 1
    )
    xbar = jnp.broadcast_to(xbar, n.shape)
    count = has_data.sum().astype(dtype)
    pos_mean = jnp.where(has_data, jnp.maximum(xbar, 0), 0).sum() / jnp.maximum(count, 1)
    # Floor relative to the largest |x̄| so that the start is within a few radii of any answer.
    scale = jnp.where(has_data, jnp.abs(xbar), 0).max(initial=0)
    floor = jnp.maximum(1e-3 * scale, jnp.finfo(dtype).tiny ** 0.25)
    return jnp.where(count > 0, 1 / jnp.maximum(pos_mean, floor), jnp.ones((), dtype))


def estimate_lam(
    stats: SuffStats,
    *,
    sigma: ArrayLike = 1.0,
    lam0: ArrayLike | None = None,
    num_steps: int = 60,
    tol: ArrayLike | None = None,
    max_step: ArrayLike = 4.0,
) -> jax.Array:
    r"""Type-II maximum likelihood of the prior rate λ shared by many datasets.

    Maximises the total exact log evidence

    .. math::  \hat\lambda = \arg\max_\lambda \sum_d \log p(x_d \mid \lambda, \sigma_d)

    by Newton steps on ``η = log λ``, with ``F'(η)`` and ``F''(η)`` from ``jax.grad`` of
    ``jax.grad``. Safeguards: each step is clipped to a trust radius (at most ``max_step`` in
    ``log λ``); a step that lowers the total is rejected and the radius quartered; where the
    total is not concave the step is an ascent step of the full radius. The loop is a
    ``lax.while_loop`` of at most ``num_steps`` iterations that stops once an accepted step is
    below ``tol`` in ``log λ`` (Newton converges quadratically, so the answer is then good to
    about ``tol²``). Jittable and vmappable; no value is checked (invalid data gives NaN).
    Differentiable in the data and σ (forward and reverse mode) by the implicit function
    theorem at the maximum, :math:`d\hat\eta = -\partial F'/F''`, not through the loop.

    When λ is so large that every z is indistinguishable from 0 at the data's noise level, the
    total is flat in λ and the answer is only a lower bound; if every dataset's mean is below 0
    no maximum exists and the result grows with ``num_steps``.

    Args:
        stats: :class:`~jaxvi.SuffStats` of any batch shape ``(...)``; every dataset counts
            (empty ones add nothing).
        sigma: known noise scale σ, a scalar or broadcastable to ``(...)``.
        lam0: starting λ, scalar; ``None`` uses the moment estimate ``1/mean(max(x̄, ε))``
            (E x̄ = E z = 1/λ).
        num_steps: the most Newton iterations (static).
        tol: stop once an accepted step in ``log λ`` is smaller; ``None`` uses ``√eps`` of the
            dtype.
        max_step: largest step in ``log λ``.

    Returns:
        ``()`` array: λ̂, in the dtype of ``stats``.

    Examples:
        >>> import jax
        >>> from jaxvi import estimate_lam, simulate, suff_stats
        >>> data, _ = simulate(jax.random.key(0), 20_000, lam=2.0, sizes=(1, 20))
        >>> lam_hat = estimate_lam(suff_stats(*data))
        >>> bool(abs(lam_hat / 2.0 - 1) < 0.05)
        True
    """
    dtype = float_dtype(stats.n, stats.sum_x, stats.sum_x2, stats.shift, sigma)
    stats = SuffStats(*(jnp.asarray(f, dtype) for f in stats))
    # NaN stands for "not given", so that both cases share one compiled loop.
    lam0 = jnp.asarray(jnp.nan if lam0 is None else lam0, dtype)
    tol = jnp.asarray(jnp.finfo(dtype).eps ** 0.5 if tol is None else tol, dtype)
    return _estimate_lam(
        stats, jnp.asarray(sigma, dtype), lam0, tol, jnp.asarray(max_step, dtype), num_steps
    )


@partial(jax.jit, static_argnames=("num_steps",))
def _estimate_lam(
    stats: SuffStats,
    sigma: jax.Array,
    lam0: jax.Array,
    tol: jax.Array,
    max_step: jax.Array,
    num_steps: int,
) -> jax.Array:
    return jnp.exp(_maximise(stats, sigma, lam0, tol, max_step, num_steps)[0])


@partial(jax.custom_jvp, nondiff_argnums=(5,))
def _maximise(
    stats: SuffStats,
    sigma: jax.Array,
    lam0: jax.Array,
    tol: jax.Array,
    max_step: jax.Array,
    num_steps: int,
) -> tuple[jax.Array, jax.Array]:
    """``(η̂, F''(η̂))``: the safeguarded Newton loop."""
    dtype = lam0.dtype
    eps = jnp.finfo(dtype).eps
    lam_init = jnp.where(jnp.isnan(lam0), _initial_lam(stats, dtype), lam0)

    def total(eta: jax.Array) -> tuple[jax.Array, jax.Array]:
        terms = log_evidence(stats, jnp.exp(eta), sigma)
        # Rounding floor of the total: changes below it are noise, not a lower F.
        return terms.sum(), 16 * eps * jax.lax.stop_gradient(jnp.abs(terms).sum())

    def grad_with_value(eta: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        (value, slack), grad = jax.value_and_grad(total, has_aux=True)(eta)
        return grad, (value, slack)

    def body(s: _State) -> _State:
        # Evaluate the trial point s.eta + s.step (the first trial is the start, always taken).
        eta_new = s.eta + s.step
        (grad, (value, slack)), hess = jax.value_and_grad(grad_with_value, has_aux=True)(eta_new)
        accept = (value >= s.value - slack) | (s.step_count == 0)
        small = jnp.abs(s.step) <= tol
        radius = jnp.where(
            accept, jnp.minimum(jnp.maximum(2 * jnp.abs(s.step), s.radius), max_step), s.radius / 4
        )
        pick = lambda new, old: jnp.where(accept, new, old)
        eta, grad, hess = pick(eta_new, s.eta), pick(grad, s.grad), pick(hess, s.hess)
        newton = -grad / jnp.where(hess < 0, hess, -1)
        ascent = jnp.sign(grad) * radius
        step = jnp.clip(jnp.where(hess < 0, newton, ascent), -radius, radius)
        return _State(
            s.step_count + 1,
            eta,
            pick(value, s.value),
            grad,
            hess,
            radius,
            step,
            # Stop after a small accepted step (not the start), at a stationary point, or when
            # the radius has shrunk below what rounding can see.
            (accept & small & (s.step_count > 0)) | (grad == 0) | (radius < tol * tol),
        )

    def cond(s: _State) -> jax.Array:
        return (s.step_count <= num_steps) & ~s.done

    zero = jnp.zeros((), dtype)
    init = _State(
        step_count=jnp.zeros((), jnp.int32),
        eta=jnp.log(lam_init),
        value=jnp.full((), -jnp.inf, dtype),
        grad=zero,
        hess=zero,
        radius=jnp.minimum(jnp.ones((), dtype), max_step),
        step=zero,
        done=jnp.zeros((), bool),
    )
    out = jax.lax.while_loop(cond, body, init)
    # Invalid data (NaN, λ₀ ≤ 0, σ ≤ 0) makes the total NaN: answer NaN, not the start.
    ok = jnp.isfinite(out.value) & jnp.isfinite(out.grad)
    return jnp.where(ok, out.eta, jnp.nan), out.hess


@_maximise.defjvp
def _maximise_jvp(num_steps, primals, tangents):
    # Implicit function theorem at the maximum: F'(η̂; x, σ) = 0, so dη̂ = −dF'/F''. Only the
    # data and σ carry derivatives (λ₀, tol and max_step do not move the maximum). Reverse mode
    # works by transposing this rule, which is linear in the tangents; the loop is never
    # differentiated.
    stats, sigma = primals[:2]
    eta, hess = _maximise(*primals, num_steps)
    slope = lambda st, sg: jax.grad(lambda e: log_evidence(st, jnp.exp(e), sg).sum())(eta)
    _, d_slope = jax.jvp(slope, (stats, sigma), tuple(tangents[:2]))
    concave = hess < 0
    d_eta = jnp.where(concave, -d_slope / jnp.where(concave, hess, -1), 0)
    return (eta, hess), (d_eta, jnp.zeros_like(hess))
