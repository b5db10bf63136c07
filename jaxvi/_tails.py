r"""Standard-normal tail functions that stay accurate where the textbook forms cancel.

The exact posterior is a Normal(t, 1) truncated to ``z ≥ 0`` (in units of ``1/√a``). Its
moments and the KL gap involve ``δ = φ(t)/Φ(t)`` and ``m = t + δ``, which for ``t → −∞`` are
the difference of two nearly equal numbers of order ``|t|``. There we use Laplace's continued
fraction of the Mills ratio,

.. math::  m = t + \delta = \cfrac{1}{y + \cfrac{2}{y + \cfrac{3}{y + \dotsb}}}, \qquad y = -t,

and series in ``1/y²``. The cut-offs and term counts depend on the dtype (a static property):
each is chosen so that the direct form loses at most ~``y²`` ulps where it is used.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, log_ndtr

SQRT_HALF = float(np.sqrt(0.5))
SQRT_2_OVER_PI = float(np.sqrt(2 / np.pi))
HALF_LOG_PI_OVER_2 = 0.5 * float(np.log(np.pi / 2))
HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))

# KL(q* ‖ p) for t → −∞, in powers of e = 1/y²: Σ_k c_k e^(k+2)  (derived with sympy).
_KL_SERIES = (
    1 / 2,
    -17 / 3,
    241 / 4,
    -3409 / 5,
    50981 / 6,
    -826741 / 7,
    14692993 / 8,
    -286774049 / 9,
    6130314373 / 10,
    -142822098693 / 11,
)


class TailConstants(NamedTuple):
    cf_from: float  # y beyond which m comes from the continued fraction
    cf_terms: int
    kl_series_from: float  # y beyond which the KL comes from its series


def tail_constants(dtype) -> TailConstants:
    if jnp.finfo(dtype).bits >= 64:
        return TailConstants(cf_from=6.0, cf_terms=24, kl_series_from=20.0)
    return TailConstants(cf_from=4.0, cf_terms=12, kl_series_from=10.0)


class Mills(NamedTuple):
    """``m = t + δ`` and ``1 − δ·m`` (the truncated normal's mean and variance in units of 1/√a)."""

    m: jax.Array
    var: jax.Array


def mills(t: jax.Array) -> Mills:
    """Mean ``t + δ`` and variance ``1 − δ(t + δ)`` of Normal(t, 1) truncated to ``[0, ∞)``."""
    k = tail_constants(t.dtype)
    y = -t
    far = y > k.cf_from
    # Direct: δ = √(2/π) / erfcx(−t/√2); exact where −t is small, 0 for large t.
    t_near = jnp.where(far, 0, t)
    delta = SQRT_2_OVER_PI / erfcx(-t_near * SQRT_HALF)
    m_near = t_near + delta
    var_near = 1 - delta * m_near
    # Far: m = 1/(y + q), q = 2/(y + 3/(y + …)); then 1 − δm = m(q − m), with no cancellation.
    y_far = jnp.where(far, y, k.cf_from + 1)
    q = jnp.zeros_like(y_far)
    for j in range(k.cf_terms, 1, -1):
        q = j / (y_far + q)
    m_far = 1 / (y_far + q)
    var_far = m_far * (q - m_far)
    return Mills(jnp.where(far, m_far, m_near), jnp.where(far, var_far, var_near))


def log_mills_ratio(y: jax.Array) -> jax.Array:
    """``log R(y) = log(Q(y)/φ(y)) = log(√(π/2)·erfcx(y/√2))``, finite for every finite y."""
    return HALF_LOG_PI_OVER_2 + jnp.log(erfcx(y * SQRT_HALF))


def kl_at_optimum(t: jax.Array) -> jax.Array:
    r"""``KL(q_θ* ‖ p(z|x))`` as a function of ``t = B/√a`` alone; ≥ 0, → 1/(2t⁴) as t → −∞.

    With ``u = θ*/√a`` (``u² + tu − 2 = 0``):
    ``KL = u²/2 + 1/u² − 2 + log u + ½log 2π + log Φ(t)``. For ``t < 0`` we write
    ``y = −t``, ``w = u − y`` and ``R = 1/(y + m)`` and use the equal form
    ``−w²/2 + 1/u² + log1p((w − m)/(y + m))``, whose terms are O(1/y²) rather than O(y²);
    far out, the series in ``1/y²``.
    """
    k = tail_constants(t.dtype)
    nonneg = t >= 0
    # t ≥ 0.
    tp = jnp.where(nonneg, t, 1)
    u = 4 / (tp + jnp.sqrt(tp * tp + 8))
    kl_pos = (u * u / 2 - 2 + 1 / (u * u)) + (jnp.log(u) + HALF_LOG_2PI + log_ndtr(tp))
    # t < 0, moderate.
    y = jnp.where(nonneg, 1, -t)
    series = y > k.kl_series_from
    y_mid = jnp.where(series, 1, y)
    w = 4 / (y_mid + jnp.sqrt(y_mid * y_mid + 8))
    u_mid = y_mid + w
    m = mills(-y_mid).m
    kl_mid = (1 / (u_mid * u_mid) - w * w / 2) + jnp.log1p((w - m) / (y_mid + m))
    # t ≪ 0.
    e = 1 / jnp.where(series, y, k.kl_series_from + 1) ** 2
    acc = jnp.zeros_like(e)
    for c in reversed(_KL_SERIES):
        acc = acc * e + c
    kl_far = acc * e * e
    kl_neg = jnp.where(series, kl_far, kl_mid)
    return jnp.maximum(jnp.where(nonneg, kl_pos, kl_neg), 0)
