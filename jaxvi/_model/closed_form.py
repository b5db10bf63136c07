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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxvi._model.dtypes import float_dtype
from jaxvi._model.statistics import SuffStats

__all__ = ["b", "elbo", "elbo_grad", "theta_star"]

# √(2π) as an unevaluated float64 sum, so that σ·√(2π) can be formed to twice the precision.
_SQRT_2PI = (2.5066282746310007, -1.8328579980459167e-16)


class Model(NamedTuple):
    """The model's quantities for a batch, all of one float dtype and shape ``(...)``."""

    stats: SuffStats  # fields cast to the working dtype
    lam: jax.Array  # NaN where λ ≤ 0
    sigma: jax.Array  # NaN where σ ≤ 0
    v: jax.Array  # σ²
    a: jax.Array  # n / σ²
    b: jax.Array  # Σx/σ² − λ, correct to about one rounding of B itself
    half_log_2pi_v: jax.Array  # ½·log(2πσ²) = log(σ√(2π)), correct relative to itself


def two_sum(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``x + y = s + e`` exactly (Knuth's TwoSum)."""
    s = x + y
    yy = s - x
    return s, (x - (s - yy)) + (y - yy)


def _split(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``x = hi + lo`` with half the mantissa in each (Veltkamp)."""
    c = (4097.0 if jnp.finfo(x.dtype).bits < 64 else 134217729.0) * x
    hi = c - (c - x)
    return hi, x - hi


def two_prod(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``x·y = p + e`` exactly (Dekker's TwoProduct); ``e = 0`` where the split overflows."""
    p = x * y
    xh, xl = _split(x)
    yh, yl = _split(y)
    e = ((xh * yh - p) + xh * yl + xl * yh) + xl * yl
    return p, jnp.where(jnp.isfinite(e), e, 0)


@jax.custom_jvp
def _coefficients(
    n: jax.Array, sum_x: jax.Array, shift: jax.Array, sigma: jax.Array, lam: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(v, a, B, ½·log 2πv)`` with error-free transformations where plain rounding fails.

    * ``B = Σx/v − λ``: rounded term by term it is off by ~ε·(|Σx|/v + λ), which is all of B
      where the two cancel, and θ*, the ELBO and its gradient inherit that error through
      ``B/θ``. Here ``Σx = sum_x + n·shift``, ``v = σ²`` and the quotient are carried as
      unevaluated sums, so only B's own final rounding is left.
    * ``½·log 2πv = log(σ√2π)`` is multiplied by n (up to 10⁶) in the ELBO's constant and
      vanishes at σ = 1/√(2π): it is formed from the exact product ``σ·√2π`` through log1p.
    * ``a = n/v`` uses the low part of ``v`` too.

    The custom JVP gives the derivatives of the exact formulas, instead of differentiating the
    error terms (whose derivatives are rounding noise of large cancelling terms).
    """
    dtype = sigma.dtype
    v_hi, v_lo = two_prod(sigma, sigma)
    ns_hi, ns_lo = two_prod(n, shift)
    s_hi, s_lo = two_sum(sum_x, ns_hi)
    s_lo = s_lo + ns_lo
    q = s_hi / v_hi
    m_hi, m_lo = two_prod(q, v_hi)
    # s − q·v, exactly up to the second-order terms: s_hi − m_hi is exact (Sterbenz).
    q_lo = (((s_hi - m_hi) - m_lo) + s_lo - q * v_lo) / v_hi
    b_hi, b_lo = two_sum(q, -lam)
    bb = b_hi + (b_lo + q_lo)
    a = n / v_hi
    a = a - a * (v_lo / v_hi)
    c_hi = np.asarray(_SQRT_2PI[0], dtype)
    c_lo = np.asarray((_SQRT_2PI[0] - float(c_hi)) + _SQRT_2PI[1], dtype)
    p_hi, p_lo = two_prod(sigma, jnp.asarray(c_hi))
    p_lo = p_lo + sigma * c_lo
    # Near 1, p_hi − 1 is exact (Sterbenz) and log1p keeps the digits of log(σ√2π) ≈ 0.
    # (XLA's float64 log1p is ~120 ulp off near −0.41, hence the narrow window.)
    near_one = (p_hi > 0.75) & (p_hi < 1.25)
    half_log = jnp.where(
        near_one,
        jnp.log1p(jnp.where(near_one, p_hi - 1, 0) + p_lo),
        jnp.log(p_hi) + p_lo / p_hi,
    )
    return v_hi, a, bb, half_log


@_coefficients.defjvp
def _coefficients_jvp(primals, tangents):
    n, _, shift, sigma, lam = primals
    dn, dsum_x, dshift, dsigma, dlam = tangents
    v, a, bb, half_log = _coefficients(*primals)
    dlog_sigma = dsigma / sigma
    dv = 2 * v * dlog_sigma
    da = dn / v - 2 * a * dlog_sigma
    # ∂B/∂σ = −2(Σx/v)/σ, with Σx/v = B + λ.
    dbb = (dsum_x + dn * shift + n * dshift) / v - 2 * (bb + lam) * dlog_sigma
    return (v, a, bb, half_log), (dv, da, dbb - dlam, dlog_sigma)


def model(stats: SuffStats, lam: ArrayLike, sigma: ArrayLike) -> Model:
    """Casts ``stats``, ``lam`` and ``sigma`` to one float dtype and forms ``v``, ``a``, ``B``.

    ``λ ≤ 0`` or ``σ ≤ 0`` turn into NaN here, so that an invalid dataset gives NaN in its
    own entries of every kernel, and in no other.
    """
    if not isinstance(stats, SuffStats):
        raise TypeError(f"expected SuffStats, got {type(stats).__name__}")
    dtype = float_dtype(stats.n, stats.sum_x, stats.sum_x2, stats.shift)
    st = SuffStats(*(jnp.asarray(f, dtype) for f in stats))
    lam = jnp.asarray(lam, dtype)
    sigma = jnp.asarray(sigma, dtype)
    # 0·log(x) is 0 for x > 0 and NaN for x ≤ 0; no NaN constant is ever materialised, so
    # valid rows stay clean under jax.debug_nans.
    lam = lam + 0 * jnp.log(lam)
    sigma = sigma + 0 * jnp.log(sigma)
    shape = jnp.broadcast_shapes(st.n.shape, st.sum_x.shape, st.shift.shape, sigma.shape, lam.shape)
    bc = lambda x: jnp.broadcast_to(x, shape)
    v, a, bb, half_log = _coefficients(bc(st.n), bc(st.sum_x), bc(st.shift), bc(sigma), bc(lam))
    return Model(st, lam, sigma, v, a, bb, half_log)


def log_prior_const(m: Model) -> jax.Array:
    """``C − 1 = −Σx²/(2v) − (n/2)·log(2πv) + log λ`` (the ELBO's constant less its 1)."""
    return (jnp.log(m.lam) - m.stats.n * m.half_log_2pi_v) - m.stats.total_sum_sq() / (2 * m.v)


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
