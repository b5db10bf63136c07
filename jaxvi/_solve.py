"""``solve``: every per-dataset quantity in one fused, jitted kernel."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvi._closed_form import _elbo_core, _theta_star, log_prior_const, model
from jaxvi._exact import kl_gap, log_evidence
from jaxvi._stats import SuffStats

__all__ = ["Solution", "solve"]


class Solution(NamedTuple):
    """Per-dataset results; every field has the batch shape ``(...)``.

    Attributes:
        n: number of observations.
        b: ``B = Σx/σ² − λ``.
        theta: the rate reported: θ* unless one was given.
        elbo: ELBO at ``theta``.
        grad: dELBO/dθ at ``theta`` (≈ 0 at θ*; compare it with
            ``|B|/θ² + 2a/θ³ + 1/θ``, see :func:`relative_grad`).
        log_evidence: exact log p(x) (NaN when not requested).
        kl_gap: ``log_evidence − elbo`` at ``theta``, computed without cancellation.
    """

    n: jax.Array
    b: jax.Array
    theta: jax.Array
    elbo: jax.Array
    grad: jax.Array
    log_evidence: jax.Array
    kl_gap: jax.Array


@partial(jax.jit, static_argnames=("exact",))
def solve(
    stats: SuffStats,
    lam: ArrayLike = 1.0,
    sigma: ArrayLike = 1.0,
    *,
    theta: ArrayLike | None = None,
    exact: bool = True,
) -> Solution:
    """Solve every dataset of a batch: B, θ*, the ELBO, its gradient, log p(x) and the KL gap.

    One jitted kernel; the reductions that made ``stats`` fuse in front of it when both run
    under one ``jit``.

    Args:
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.
        theta: rate of q to evaluate at, broadcastable to ``(...)``; θ* when ``None``.
        exact: also compute ``log_evidence`` and ``kl_gap`` (NaN otherwise). The closed-form
            part alone is cheaper.

    Returns:
        :class:`Solution` with fields of the batch shape.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, solve
        >>> st = SuffStats(jnp.array([0.0, 3.0]), jnp.array([0.0, 4.5]), jnp.array([0.0, 9.0]))
        >>> sol = solve(st)
        >>> sol.theta.tolist()[0], sol.kl_gap.tolist()[0]
        (1.0, 0.0)
    """
    m = model(stats, lam, sigma)
    shape = m.b.shape
    if theta is None:
        th = _theta_star(m.b, m.a)
    else:
        shape = jnp.broadcast_shapes(jnp.shape(theta), shape)
        th = jnp.broadcast_to(jnp.asarray(theta, m.b.dtype), shape)
    c = log_prior_const(m) + 1
    value, grad = jax.jvp(lambda x: _elbo_core(x, m.b, m.a, c), (th,), (jnp.ones_like(th),))
    if exact:
        log_p = jnp.broadcast_to(log_evidence(stats, lam, sigma), shape)
        kl = jnp.broadcast_to(kl_gap(stats, lam, sigma, theta=theta), shape)
    else:
        log_p = kl = jnp.full(shape, jnp.nan, m.b.dtype)
    bc = lambda x: jnp.broadcast_to(x, shape)
    return Solution(bc(m.stats.n), bc(m.b), th, bc(value), bc(grad), log_p, kl)


def relative_grad(sol: Solution, sigma: ArrayLike = 1.0) -> jax.Array:
    """``|grad| / (|B|/θ² + 2a/θ³ + 1/θ)``: how far ``theta`` is from stationary, in the scale of
    the gradient's own terms (the accuracy contract's yardstick). Shape ``(...)``."""
    r = 1 / sol.theta
    a = sol.n / jnp.square(jnp.asarray(sigma, sol.theta.dtype))
    scale = r * (r * (jnp.abs(sol.b) + 2 * a * r) + 1)
    return jnp.abs(sol.grad) / scale
