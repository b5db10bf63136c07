r"""The closed forms of the derivation: ``b``, ``theta_star``, ``elbo`` and ``elbo_grad``.

With ``v = σ²`` and ``a = n / v``:

.. math::

    B = \frac{\sum x}{v} - \lambda, \qquad
    \mathrm{ELBO}(\theta) = \frac{B}{\theta} - \frac{a}{\theta^2} - \log\theta + C, \qquad
    C = -\frac{\sum x^2}{2v} - \frac{n}{2}\log(2\pi v) + \log\lambda + 1,

and ``θ*`` is the positive root of ``θ² + Bθ − 2a = 0``.

Every function is elementwise over the batch shape of its arguments and broadcasts ``lam``,
``sigma`` and ``theta`` against it. Kernels never raise on values: an invalid dataset
(``λ ≤ 0``, ``σ ≤ 0``, non-finite data) gives NaN or inf in its own entries only.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxvi._dtypes import float_dtype
from jaxvi._stats import SuffStats

__all__ = ["b", "elbo", "elbo_grad", "theta_star"]

HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))


class Model(NamedTuple):
    """The model's quantities for a batch, all of one float dtype and shape ``(...)``."""

    stats: SuffStats  # fields cast to the working dtype
    lam: jax.Array
    sigma: jax.Array
    v: jax.Array  # σ²
    a: jax.Array  # n / σ²
    b: jax.Array  # Σx/σ² − λ


def model(stats: SuffStats, lam: ArrayLike, sigma: ArrayLike) -> Model:
    """Casts ``stats``, ``lam`` and ``sigma`` to one float dtype and forms ``v``, ``a``, ``B``."""
    if not isinstance(stats, SuffStats):
        raise TypeError(f"expected SuffStats, got {type(stats).__name__}")
    dtype = float_dtype(stats.n, stats.sum_x, stats.sum_x2, stats.shift)
    st = SuffStats(*(jnp.asarray(f, dtype) for f in stats))
    lam = jnp.asarray(lam, dtype)
    sigma = jnp.asarray(sigma, dtype)
    v = sigma * sigma
    a = st.n / v
    bb = st.total_sum() / v - lam
    return Model(st, lam, sigma, v, a, bb)


def log_prior_const(m: Model) -> jax.Array:
    """``C − 1 = −Σx²/(2v) − n·log(√(2π)·σ) + log λ`` (the ELBO's constant less its 1)."""
    n = m.stats.n
    return (
        -m.stats.total_sum_sq() / (2 * m.v) - n * (HALF_LOG_2PI + jnp.log(m.sigma)) + jnp.log(m.lam)
    )


def b(stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0) -> jax.Array:
    r"""The linear coefficient :math:`B = \sum x/\sigma^2 - \lambda`.

    Args:
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: known noise scale σ, broadcastable to ``(...)``.

    Returns:
        ``(...)`` array of B.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, b
        >>> b(SuffStats(jnp.array(2.0), jnp.array(3.0), jnp.array(5.0)), lam=1.0).tolist()
        2.0
    """
    return model(stats, lam, sigma).b


def _theta_star(bb: jax.Array, a: jax.Array) -> jax.Array:
    # √(B² + 8a) without overflow: |B|·√(1 + 8a/B²) once |B| > 1.
    scale = jnp.maximum(jnp.abs(bb), 1)
    root = scale * jnp.sqrt(jnp.square(bb / scale) + (8 * a / scale) / scale)
    positive = bb > 0
    # For B > 0, (−B + √·)/2 cancels; the conjugate 4a/(B + √·) does not.
    denom = jnp.where(positive, bb + root, 1)
    return jnp.where(positive, 4 * a / denom, (root - bb) / 2)


def theta_star(stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0) -> jax.Array:
    r"""The optimal rate θ*: the positive root of :math:`\theta^2 + B\theta - 2a = 0`.

    Computed as :math:`(-B + \sqrt{B^2 + 8a})/2` for ``B ≤ 0`` and as the conjugate
    :math:`4a / (B + \sqrt{B^2 + 8a})` for ``B > 0``, which does not cancel. For an empty
    dataset θ* = λ. Differentiable in λ, σ and the data.

    Args:
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.

    Returns:
        ``(...)`` array of θ*.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, theta_star
        >>> st = SuffStats(jnp.array(1.0), jnp.array(1e4), jnp.array(1e8))
        >>> float(theta_star(st))  # the textbook root gives 0 here in float32
        0.00020002...
    """
    m = model(stats, lam, sigma)
    return _theta_star(m.b, m.a)


@jax.custom_jvp
def _elbo_core(theta: jax.Array, bb: jax.Array, a: jax.Array, c: jax.Array) -> jax.Array:
    """``B/θ − a/θ² − log θ + c``, written in ``r = 1/θ``."""
    r = 1 / theta
    return r * (bb - a * r) - jnp.log(theta) + c


def _elbo_core_jvp(primals, tangents):
    theta, bb, a, c = primals
    dtheta, dbb, da, dc = tangents
    r = 1 / theta
    out = r * (bb - a * r) - jnp.log(theta) + c
    # dELBO/dθ = −r·(1 + r·(B − 2a·r)): its separate terms B/θ², 2a/θ³ can overflow while it
    # does not, and at θ* the bracket is the quadratic's residual, so no term is formed apart.
    # Zero tangents stay symbolic so that an overflowing coefficient never meets a 0 (inf·0).
    dout = jnp.zeros_like(out)
    if not isinstance(dtheta, SymbolicZero):
        dout = dout + (-r * (1 + r * (bb - 2 * a * r))) * dtheta
    if not isinstance(dbb, SymbolicZero):
        dout = dout + r * dbb
    if not isinstance(da, SymbolicZero):
        dout = dout - (da * r) * r
    if not isinstance(dc, SymbolicZero):
        dout = dout + dc
    return out, jnp.broadcast_to(dout, out.shape)


_elbo_core.defjvp(_elbo_core_jvp, symbolic_zeros=True)


def elbo(
    theta: ArrayLike, stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0
) -> jax.Array:
    r"""The closed-form ELBO of :math:`q_\theta = \mathrm{Exponential}(\theta)`, constant included.

    .. math::

        \mathrm{ELBO}(\theta) = \frac{B}{\theta} - \frac{a}{\theta^2} - \log\theta
        - \frac{\sum x^2}{2\sigma^2} - \frac{n}{2}\log(2\pi\sigma^2) + \log\lambda + 1

    Its derivative in θ is a custom JVP that stays finite wherever the true gradient is
    representable (see :func:`elbo_grad`).

    Args:
        theta: ``(...)`` rate of q, > 0, broadcastable against the batch.
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.

    Returns:
        ``(...)`` array of ELBO values.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, elbo
        >>> float(elbo(1.0, SuffStats(jnp.array(0.0), jnp.array(0.0), jnp.array(0.0))))  # n = 0
        0.0
    """
    m = model(stats, lam, sigma)
    theta = jnp.asarray(theta, m.b.dtype)
    return _elbo_core(theta, m.b, m.a, log_prior_const(m) + 1)


def elbo_grad(
    theta: ArrayLike, stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0
) -> jax.Array:
    r"""dELBO/dθ by ``jax.grad``, elementwise over the batch.

    Equal to :math:`-B/\theta^2 + 2a/\theta^3 - 1/\theta`, evaluated as
    :math:`-r(1 + r(B - 2ar))` with ``r = 1/θ`` so that no term overflows on its own.

    Args:
        theta: ``(...)`` rate of q, > 0.
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.

    Returns:
        Array of the broadcast shape of ``theta`` and the batch.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, elbo_grad, theta_star
        >>> st = SuffStats(jnp.array(3.0), jnp.array(4.5), jnp.array(9.0))
        >>> abs(float(elbo_grad(theta_star(st), st))) < 1e-5
        True
    """
    m = model(stats, lam, sigma)
    shape = jnp.broadcast_shapes(jnp.shape(theta), m.b.shape)
    theta = jnp.broadcast_to(jnp.asarray(theta, m.b.dtype), shape)
    return jax.grad(lambda th: elbo(th, stats, lam, sigma).sum())(theta)
