"""``solve``: every per-dataset quantity in one fused, jitted kernel."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvi._model.closed_form import _elbo_core, theta_star_of_model
from jaxvi._model.coefficients import log_prior_const, model
from jaxvi._model.exact import log_evidence_and_kl_gap
from jaxvi._model.statistics import SuffStats

__all__ = ["Solution", "relative_grad", "solve"]


class Solution(NamedTuple):
    """Per-dataset results of :func:`solve`; every field has the batch shape ``(...)``.

    Attributes:
        n: number of observations N.
        b: ``B = Σx/σ² − λ``.
        theta: the rate θ reported: θ* when :func:`solve` got ``theta=None``, else the θ given.
        elbo: ELBO(θ), its constant included.
        grad: dELBO/dθ at θ. At θ* it is ≈ 0 only relative to the size of its terms,
            ``|B|/θ² + 2a/θ³ + 1/θ``: report :func:`relative_grad`, not the raw value.
        log_evidence: the exact log p(x); NaN when ``solve(..., exact=False)``.
        kl_gap: ``KL(q_θ ‖ p(z|x)) = log_evidence − elbo`` at θ, formed without cancelling
            the two; ≥ 0. NaN when ``solve(..., exact=False)``.
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

    One jitted kernel, elementwise over the batch. Under an enclosing ``jit`` the reductions
    that made ``stats`` (:func:`~jaxvi.suff_stats`) fuse in front of it. Kernels never raise on
    values: an invalid dataset (λ ≤ 0, σ ≤ 0, non-finite statistics) gives NaN in its own row.

    Args:
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``; its float dtype is the
            dtype of every result (integer statistics give the default float).
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.
        theta: rate of q to evaluate at, broadcastable against the batch; θ* when ``None``.
        exact: also compute ``log_evidence`` and ``kl_gap`` (NaN otherwise, static). The
            closed-form part alone is cheaper.

    Returns:
        :class:`Solution` whose fields have the broadcast shape of ``stats``, ``lam``,
        ``sigma`` and ``theta``. ``grad`` is the custom-JVP derivative that
        :func:`~jaxvi.elbo_grad` returns, and ``kl_gap`` is ``log_evidence − elbo`` at the
        ``theta`` reported.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, solve
        >>> st = SuffStats(jnp.array([0.0, 3.0]), jnp.array([0.0, 4.5]), jnp.array([0.0, 9.0]))
        >>> sol = solve(st)  # an empty dataset, then x = (1.5, 1.5, 1.5)
        >>> sol.theta.tolist()[0], sol.kl_gap.tolist()[0]  # the prior: θ* = λ, KL = 0
        (1.0, 0.0)
        >>> at2 = solve(st, theta=2.0)
        >>> bool(jnp.allclose(at2.kl_gap, at2.log_evidence - at2.elbo, atol=1e-5))
        True
    """
    m = model(stats, lam, sigma)
    c = log_prior_const(m) + 1
    shape = jnp.broadcast_shapes(m.b.shape, m.a.shape, c.shape)
    if theta is None:
        th = jnp.broadcast_to(theta_star_of_model(m), shape)
    else:
        shape = jnp.broadcast_shapes(jnp.shape(theta), shape)
        th = jnp.broadcast_to(jnp.asarray(theta, m.b.dtype), shape)
    # A jvp with a unit tangent on θ alone: the other inputs' tangents stay symbolic zeros, so
    # this is exactly the custom rule −r(1 + r(B − 2ar)) that elbo_grad returns.
    value, grad = jax.jvp(lambda x: _elbo_core(x, m.b, m.a, c), (th,), (jnp.ones_like(th),))
    if exact:
        log_p, kl = log_evidence_and_kl_gap(stats, lam, sigma, None if theta is None else th)
        log_p, kl = jnp.broadcast_to(log_p, shape), jnp.broadcast_to(kl, shape)
    else:
        log_p = kl = jnp.full(shape, jnp.nan, m.b.dtype)
    bc = lambda x: jnp.broadcast_to(x, shape)
    return Solution(bc(m.stats.n), bc(m.b), th, bc(value), bc(grad), log_p, kl)


def relative_grad(sol: Solution, sigma: ArrayLike = 1.0) -> jax.Array:
    r"""How far ``sol.theta`` is from stationary, in the scale of the gradient's own terms.

    .. math::

        \frac{|\mathrm{grad}|}{|B|/\theta^2 + 2a/\theta^3 + 1/\theta}, \qquad a = n/\sigma^2,

    the accuracy contract's yardstick for ``elbo_grad``: at θ* it is a few ulps, whereas the
    raw gradient can be huge when its terms are.

    Args:
        sol: a :class:`Solution` of batch shape ``(...)``.
        sigma: the σ that ``sol`` was solved with, broadcastable to ``(...)``.

    Returns:
        ``(...)`` array of ratios ≥ 0, in ``sol``'s dtype.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, relative_grad, solve
        >>> st = SuffStats(jnp.array(1.0), jnp.array(1e4), jnp.array(1e8))
        >>> bool(relative_grad(solve(st)) < 1e-6)
        True
    """
    r = 1 / sol.theta
    a = sol.n / jnp.square(jnp.asarray(sigma, sol.theta.dtype))
    scale = r * (r * (jnp.abs(sol.b) + 2 * a * r) + 1)
    return jnp.abs(sol.grad) / scale
