r"""The Mills ratio of the standard normal, accurate where the textbook forms cancel.

The exact posterior is a Normal(t, 1) truncated to ``z ≥ 0`` (in units of ``1/√a``). Its
moments involve ``δ = φ(t)/Φ(t)`` and ``m = t + δ``, which for ``t → −∞`` are the difference
of two nearly equal numbers of order ``|t|``. There we use Laplace's continued fraction of the
Mills ratio ``R(y) = Q(y)/φ(y)``,

.. math::  R(y) = \frac{1}{y + m}, \qquad
    m = t + \delta = \cfrac{1}{y + \cfrac{2}{y + \cfrac{3}{y + \dotsb}}}, \qquad y = -t.

The cut-offs and term counts depend on the dtype (a static property); each is the smallest
that gives ≤ 1 ulp of truncation error at the cut-off (measured against mpmath), and the
direct forms lose at most ~``y²`` ulps below it. Below the cut-off, float32 takes ``R``, ``m``
and the variance from Taylor tables computed in float64 (≤ 2 ulp); float64 takes ``R`` from
``erfcx`` on ``[0, 4.3]`` only. JAX's ``erfcx`` is ``exp(x²)·erfc(x)``: ~10 ulp near x = 1, and
in float32 it returns 0 on [9.19, 9.42], where ``erfc`` flushes to zero — so it is never used
out there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, ndtr

__all__ = [
    "HALF_LOG_2PI",
    "HALF_LOG_PI_OVER_2",
    "INV_SQRT_2PI",
    "SQRT_HALF",
    "Mills",
    "TailConstants",
    "log_ndtr_nonneg",
    "m_asymptotic",
    "mills",
    "parts",
    "tail_constants",
]


SQRT_HALF = float(np.sqrt(0.5))


HALF_LOG_PI_OVER_2 = 0.5 * float(np.log(np.pi / 2))


HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))


INV_SQRT_2PI = float(1 / np.sqrt(2 * np.pi))


def _taylor_tables(terms: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Taylor coefficients of R, m = 1/R − y and 1 − (1/R)·m about y = ¼, ¾, 1¼, 1¾.

    ``R' = yR − 1`` gives ``R⁽ᵏ⁺¹⁾ = y·R⁽ᵏ⁾ + k·R⁽ᵏ⁻¹⁾``; ``1/R``, ``m`` and the variance follow
    by series division and product. All in float64, where the cancellations of ``1/R − y``
    and ``1 − δm`` cost nothing a float32 evaluation can see: the float32 polynomials are
    within 2 ulp of mpmath on [0, 2], where ``erfcx`` gives ~10 ulp and the direct ``m`` and
    variance lose up to 6× and 50× more.
    """
    centres = (0.25, 0.75, 1.25, 1.75)
    r, m, var = [], [], []
    for yc in centres:
        r0 = math.sqrt(math.pi / 2) * math.exp(yc * yc / 2) * math.erfc(yc / math.sqrt(2))
        c = [r0, yc * r0 - 1]
        for k in range(1, terms - 1):
            c.append((yc * c[k] + c[k - 1]) / (k + 1))
        d = [1 / c[0]]
        for k in range(1, terms):
            d.append(-sum(c[j] * d[k - j] for j in range(1, k + 1)) / c[0])
        mk = [d[0] - yc, d[1] - 1, *d[2:]]
        vk = [-sum(d[j] * mk[k - j] for j in range(k + 1)) for k in range(terms)]
        vk[0] += 1
        r.append(c)
        m.append(mk)
        var.append(vk)
    return np.array(r), np.array(m), np.array(var)


_TAYLOR_R, _TAYLOR_M, _TAYLOR_VAR = _taylor_tables()


def _taylor(y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(R, m, var)`` at ``0 ≤ y ≤ 2`` from the Taylor tables (float32 only)."""
    i = jnp.clip(jnp.floor(2 * y), 0, 3)
    h = y - (i / 2 + 0.25)
    outs = []
    for table in (_TAYLOR_R, _TAYLOR_M, _TAYLOR_VAR):
        acc = jnp.zeros_like(y)
        for k in range(table.shape[1] - 1, -1, -1):
            c = table[:, k].astype(np.float32)
            ck = jnp.where(i < 1, c[0], jnp.where(i < 2, c[1], jnp.where(i < 3, c[2], c[3])))
            acc = acc * h + ck
        outs.append(acc)
    return outs[0], outs[1], outs[2]


def _asymptotic_m_series(terms: int = 6) -> tuple[float, ...]:
    """``b_k`` of ``m = 1/R(y) − y ~ (1/y)·Σ b_k e^k``, ``e = 1/y²``, by series division.

    ``y·R(y) ~ Σ (−1)^k (2k − 1)!! e^k``, so ``1/(y·R) − 1 = e·Σ b_k e^k``.
    """
    r = [(-1) ** k * math.prod(range(1, 2 * k, 2)) for k in range(terms + 2)]
    d = [1.0]
    for k in range(1, terms + 2):
        d.append(-sum(r[j] * d[k - j] for j in range(1, k + 1)))
    return tuple(float(v) for v in d[1 : terms + 1])


# m = 1/y − 2/y³ + 10/y⁵ − …; for y > 8 log R = −log(y + m) needs m only to ~y²·2⁻²⁴, and
# the sixth term is already below 1e-8 of m there.
_M_SERIES = _asymptotic_m_series()


def m_asymptotic(y: jax.Array) -> jax.Array:
    """``m = 1/R(y) − y`` from its asymptotic series, for float32 ``y ≥ 4``.

    Relative error ≤ 2e-4 at y = 4, 1e-8 at y = 8. ``y`` ≤ 1.8e19 keeps ``y²`` finite; beyond,
    ``e = 0`` and ``m = 1/y`` is exact.
    """
    e = 1 / (y * y)
    acc = jnp.zeros_like(e)
    for b in reversed(_M_SERIES):
        acc = acc * e + b
    return acc / y


class TailConstants(NamedTuple):
    cf_from: float  # y beyond which m and R come from the continued fraction
    cf_terms: int
    kl_series_from: float  # y beyond which the KL comes from its series
    quantile_steps: int  # Newton steps of the left-tail quantile


def tail_constants(dtype) -> TailConstants:
    """Cut-offs for ``dtype`` (static). f64: 24 CF terms are ≤ 1 ulp from y = 6 on."""
    if jnp.finfo(dtype).bits >= 64:
        return TailConstants(cf_from=6.0, cf_terms=24, kl_series_from=20.0, quantile_steps=5)
    return TailConstants(cf_from=2.0, cf_terms=32, kl_series_from=10.0, quantile_steps=4)


def log_ndtr_nonneg(t: jax.Array) -> jax.Array:
    """``log Φ(t)`` for ``t ≥ 0`` as ``log1p(−Φ(−t))``: exact to an ulp of Φ(−t) ≤ ½.

    ``jax.scipy.special.log_ndtr`` gives the same here, through a much larger graph that
    also serves its far-left tail, which we never send it.
    """
    return jnp.log1p(-ndtr(-t))


class Mills(NamedTuple):
    """``m = t + δ`` and ``1 − δ·m`` (the truncated normal's mean and variance in units of 1/√a)."""

    m: jax.Array
    var: jax.Array


def _continued_fraction(y: jax.Array, terms: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(m, q, q₃)``: ``m = 1/(y + q)``, ``q = 2/(y + q₃)``, ``q₃ = 3/(y + …)``, bottom-up."""
    q3 = jnp.zeros_like(y)
    for j in range(terms, 2, -1):
        q3 = j / (y + q3)
    q = 2 / (y + q3)
    return 1 / (y + q), q, q3


class _Parts(NamedTuple):
    """The Mills-ratio pieces at ``y ≥ 0``, near (erfcx) and far (continued fraction) alike."""

    far: jax.Array  # y > cf_from
    m: jax.Array  # 1/R(y) − y, the truncated mean at t = −y
    var: jax.Array  # 1 − (1/R)·m, the truncated variance at t = −y
    log_r: jax.Array  # log R(y)
    y_far: jax.Array  # y where far, a safe stand-in elsewhere
    q: jax.Array  # the continued fraction's levels at y_far: m = 1/(y + q), q = 2/(y + q₃)
    q3: jax.Array


def parts(y: jax.Array) -> _Parts:
    k = tail_constants(y.dtype)
    far = y > k.cf_from
    y_near = jnp.where(far, 0, y)
    if jnp.finfo(y.dtype).bits < 64:
        r_near, m_near, var_near = _taylor(y_near)
    else:
        # erfcx on [0, cf_from/√2] only, where it is exp(x²)·erfc(x) with x² ≤ 18.
        r_near = float(np.sqrt(np.pi / 2)) * erfcx(y_near * SQRT_HALF)
        m_near = 1 / r_near - y_near
        var_near = 1 - (m_near + y_near) * m_near
    y_far = jnp.where(far, y, k.cf_from + 1)
    m_far, q, q3 = _continued_fraction(y_far, k.cf_terms)
    # Far, 1 − δm = m(q − m), which does not cancel.
    return _Parts(
        far,
        jnp.where(far, m_far, m_near),
        jnp.where(far, m_far * (q - m_far), var_near),
        jnp.where(far, -jnp.log(y_far + m_far), jnp.log(r_near)),
        y_far,
        q,
        q3,
    )


@jax.jit
def mills(t: jax.Array) -> Mills:
    """Mean ``t + δ`` and variance ``1 − δ(t + δ)`` of Normal(t, 1) truncated to ``[0, ∞)``."""
    nonneg = t >= 0
    # t ≥ 0: δ = φ(t)/Φ(t) with Φ(t) ≥ ½; δ only matters where t is small, so the rounding of
    # t²/2 inside exp costs nothing.
    tp = jnp.where(nonneg, t, 0)
    delta_pos = INV_SQRT_2PI * jnp.exp(-0.5 * tp * tp) / ndtr(tp)
    m_pos = tp + delta_pos
    # t < 0: m from the Mills ratio; near, 1 − δm with δ = m + y; far, 1 − δm = m(q − m),
    # which does not cancel.
    y = jnp.where(nonneg, 1, -t)
    pt = parts(y)
    var_neg = jnp.where(pt.far, pt.m * (pt.q - pt.m), 1 - (pt.m + y) * pt.m)
    return Mills(jnp.where(nonneg, m_pos, pt.m), jnp.where(nonneg, 1 - delta_pos * m_pos, var_neg))
