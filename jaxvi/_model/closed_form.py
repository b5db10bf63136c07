r"""The closed forms of the derivation: ``b``, ``theta_star``, ``elbo`` and ``elbo_grad``.

With ``v = σ²`` and ``a = n / v``:

.. math::

    B = \frac{\sum x}{v} - \lambda, \qquad
    \mathrm{ELBO}(\theta) = \frac{B}{\theta} - \frac{a}{\theta^2} - \log\theta + C, \qquad
    C = -\frac{\sum x^2}{2v} - \frac{n}{2}\log(2\pi v) + \log\lambda + 1,

and ``θ*`` is the positive root of ``θ² + Bθ − 2a = 0``.

Every function is elementwise over the batch shape of its arguments and broadcasts ``lam``,
``sigma`` and ``theta`` against it. Kernels never raise on values: an invalid dataset
(``λ ≤ 0``, ``σ ≤ 0``, NaN data) gives NaN in its own entries only, and leaves every other
entry exactly as it would be without it.

Accuracy (DESIGN.md §1; measured by ``tests/test_reference_closed_form.py``): within a few
ulp of the contract's scales in float32 and float64 over the whole domain. What it takes:
``B``, ``a`` and ``log(σ√2π)`` from error-free products and sums (:func:`_coefficients`);
the conjugate root for ``B > 0``; the ELBO and its gradient in ``r = 1/θ``; and derivatives
of θ* by implicit differentiation rather than through the root's formula.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxvi._model.coefficients import Model, _coefficients, log_prior_const, model
from jaxvi._model.statistics import SuffStats

__all__ = ["b", "elbo", "elbo_grad", "theta_star"]


@jax.jit
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


def _theta_and_root(bb: jax.Array, a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """θ* and ``√(B² + 8a) = 2θ* + B``."""
    # √(B² + 8a) without overflow: |B|·√(1 + 8a/B²) once |B| > 1.
    scale = jnp.maximum(jnp.abs(bb), 1)
    root = scale * jnp.sqrt(jnp.square(bb / scale) + (8 * a / scale) / scale)
    positive = bb > 0
    # For B > 0, (−B + √·)/2 cancels; the conjugate 4a/(B + √·) does not.
    denom = jnp.where(positive, bb + root, 1)
    return jnp.where(positive, 4 * a / denom, (root - bb) / 2), root


@jax.custom_jvp
def _theta_star(bb: jax.Array, a: jax.Array) -> jax.Array:
    """The positive root of ``θ² + Bθ − 2a = 0``, elementwise."""
    return _theta_and_root(bb, a)[0]


@_theta_star.defjvp
def _theta_star_jvp(primals, tangents):
    # Implicit differentiation of θ² + Bθ − 2a = 0: dθ = (2·da − θ·dB)/(2θ + B). Autodiff of
    # the scaled root above would instead cancel terms of order √a/|B| against each other
    # (10⁻⁴ wrong at B = −3, a = 10⁸) and lose the conjugate's 8a/B² (1.5× wrong at B = 10¹²).
    theta, root = _theta_and_root(*primals)
    dbb, da = tangents
    return theta, (2 * da - theta * dbb) / root


@jax.custom_jvp
def _theta_star_inputs(
    n: jax.Array, sum_x: jax.Array, shift: jax.Array, sigma: jax.Array, lam: jax.Array
) -> jax.Array:
    _, a, bb, _ = _coefficients(n, sum_x, shift, sigma, lam)
    return _theta_star(bb, a)


@_theta_star_inputs.defjvp
def _theta_star_inputs_jvp(primals, tangents):
    # Implicit differentiation of v·θ² + (Σx − λv)·θ − 2n = 0 in the model's own inputs:
    #   dθ = (2·dn/v − θ·dΣx/v + θ·dλ + 2θ(λ − θ)·dσ/σ) / √(B² + 8a).
    # Going through dB and da instead cancels in σ: 2·da − θ·dB = (−4a + 2θ(B + λ))·dσ/σ,
    # whose terms are ~B/λ times their sum when B ≫ 0.
    n, sum_x, shift, sigma, lam = primals
    dn, dsum_x, dshift, dsigma, dlam = tangents
    v, a, bb, _ = _coefficients(n, sum_x, shift, sigma, lam)
    theta, root = _theta_and_root(bb, a)
    ds = dsum_x + dn * shift + n * dshift
    num = (2 * dn - theta * ds) / v + theta * dlam + 2 * theta * (lam - theta) * (dsigma / sigma)
    return theta, num / root


def theta_star_of_model(m: Model) -> jax.Array:
    """θ* of a :class:`Model`, with derivatives accurate in each of the model's inputs."""
    st = m.stats
    bc = lambda x: jnp.broadcast_to(x, m.b.shape)
    return _theta_star_inputs(bc(st.n), bc(st.sum_x), bc(st.shift), bc(m.sigma), bc(m.lam))


@jax.jit
def theta_star(stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0) -> jax.Array:
    r"""The optimal rate θ*: the positive root of :math:`\theta^2 + B\theta - 2a = 0`.

    Computed as :math:`(-B + \sqrt{B^2 + 8a})/2` for ``B ≤ 0`` and as the conjugate
    :math:`4a / (B + \sqrt{B^2 + 8a})` for ``B > 0``, which does not cancel. For an empty
    dataset θ* = λ. Differentiable in λ, σ and the statistics, by implicit differentiation
    of :math:`\sigma^2\theta^2 + (\sum x - \lambda\sigma^2)\theta - 2n = 0`.

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
    return theta_star_of_model(model(stats, lam, sigma))


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


@jax.jit
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


@jax.jit
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
