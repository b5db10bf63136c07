"""The model's coefficients for a batch, from error-free products and sums: :func:`model`.

``v = σ²``, ``a = n/v``, ``B = Σx/v − λ`` and ``½·log 2πv``, correct to about one rounding
of each (:func:`_coefficients`), and the ELBO's constant less its 1
(:func:`log_prior_const`). The closed forms (:mod:`jaxvi._model.closed_form`), the exact
posterior (:mod:`jaxvi._model.exact`) and the Monte Carlo ELBO start here.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxvi._model.dtypes import float_dtype
from jaxvi._model.statistics import SuffStats

__all__ = ["Model", "log_prior_const", "model", "two_prod", "two_sum"]

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
