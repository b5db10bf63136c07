r"""The KL gap, log Φ and log R at the optimum, and posterior quantiles, accurate where the
textbook forms cancel (the Mills ratio itself is :mod:`jaxvi._model.mills`).

For ``t → −∞`` the KL gap comes from a series in ``1/y²`` (``y = −t``), beyond a cut-off that
depends on the dtype. For ``log_evidence`` and the KL gap (:func:`at_optimum`, the hot path of
``solve``), float32 takes ``log R`` from a two-piece table on ``[0, 8]`` and the asymptotic
series of ``m`` beyond, and ``log Φ(t)`` (``t ≥ 0``) from a three-piece table on ``[0, 4)``:
every branch runs in every lane, and those cost a few dozen selects where the Taylor tables,
the continued fraction and ``ndtr`` cost ~120 selects, 32 divisions, ``erf`` and ``erfc``.

The float32 KL gap on ``t ∈ [−10, 4)`` comes from a table as well (:mod:`jaxvi._model.tables`):
every closed form of it there is a sum of terms of order 1/2 to 50 that cancel to a KL of 0.07
down to 1e-4, which costs up to 4e-6 relative in float32 (DESIGN's goal for data is 1e-6). The
table's polynomials are interpolated at import time from the float64 closed form, whose
cancellation (≤ 1e6·2⁻⁵³ at t = −8) a float32 result cannot see, and are ≤ 2 ulp from mpmath
in float32.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from jaxvi._model.mills import (
    HALF_LOG_2PI,
    HALF_LOG_PI_OVER_2,
    INV_SQRT_2PI,
    SQRT_HALF,
    log_ndtr_nonneg,
    m_asymptotic,
    parts,
    tail_constants,
)
from jaxvi._model.tables import evaluate, fit_piecewise

# KL(q* ‖ p) for t → −∞, in powers of e = 1/y²: Σ_k c_k e^(k+2)  (derived with sympy; checked
# against mpmath by tests/test_reference_exact.py).
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


# The float32 KL table on [_KL_TABLE_FROM, _KL_TABLE_TO): pieces between _KL_TABLE_EDGES, a
# polynomial of degree 9 in s = (t − centre)/half-width ∈ [−1, 1] on each (interpolation
# error ≤ 1e-8 relative, 0.2 ulp). Each term costs one select per piece in every lane, so
# the pieces are as wide as Horner's rounding allows: it is relative to the piece's largest
# value, and KL varies fastest on [−1, 2), where width-1 pieces raised the real-data worst
# KL of tests/test_real_data.py from 3.8e-7 to 4.7e-7; there they are ½ wide, 1 or 2 wide
# elsewhere (widths are powers of two, so s is exact near the centre). Every piece is
# ≤ 2.4·2⁻²⁴ from the float64 KL in float32 (measured), as with 28 pieces of width ½.
# The table reaches down to t = −10, where the 1/y² series takes over, so that float32 needs
# no continued fraction for the KL (its forms cancel only on [−8, 4), but one more piece
# costs less than the continued fraction's 10 divisions; the series with 16 terms would do
# from y = 8 on, but at 4.3·2⁻²⁴ there, as e = 1/y² enters squared).
_KL_TABLE_EDGES = (-10, -8, -6, -5, -4, -3, -2, -1, -0.5, 0, 0.5, 1, 1.5, 2, 4)
_KL_TABLE_FROM, _KL_TABLE_TO = _KL_TABLE_EDGES[0], _KL_TABLE_EDGES[-1]


def u_of_t(t, xp=jnp):
    """``u = θ*/√a``, the positive root of ``u² + tu − 2 = 0``, without cancellation and
    without overflow of ``t²`` (``xp``: ``jax.numpy``, or NumPy for the float64 tables)."""
    h = t / 2
    r = xp.abs(h) + xp.sqrt(h * h + 2)  # hypot-like in |t|/2 ≥ 0
    return xp.where(t >= 0, 2 / r, r)


def kl_from_u(u, log_phi, xp=jnp):
    """``KL(q_θ* ‖ p) = u²/2 + 1/u² − 2 + log u + ½log 2π + log Φ(t)``: the form for ``t ≥ 0``
    (its terms cancel for ``t < 0``)."""
    return (u * u / 2 - 2 + 1 / (u * u)) + (xp.log(u) + HALF_LOG_2PI + log_phi)


def _kl_float64(t: np.ndarray) -> np.ndarray:
    """``KL(q_θ* ‖ p)`` at ``t`` in float64, by :func:`kl_from_u`.

    Its terms cancel by up to 1e6× on the table's range, leaving ≤ 1e-10 relative error.
    """
    q = np.vectorize(lambda x: 0.5 * math.erfc(abs(x) * SQRT_HALF))(t)  # Φ(−|t|)
    with np.errstate(divide="ignore"):
        log_phi = np.where(t >= 0, np.log1p(-q), np.log(q))
    return kl_from_u(u_of_t(t, np), log_phi, np)


# float32 log R(y) on [0, _LOG_R_TABLE_TO]: pieces of width 4, a polynomial of degree 12 in
# s = (y − centre)/2 ∈ [−1, 1] on each (interpolation error ≤ 6e-10 absolute). log R is smooth
# there (its nearest singularities, the zeros of erfc, are ≥ 4 away in the complex plane), so
# two pieces suffice: two selects per coefficient, where the Taylor tables and the 32-term
# continued fraction that cover the same range cost 3 selects × 3 tables and 32 divisions.
_LOG_R_TABLE_TO = 8.0


def _log_r_float64(y: np.ndarray) -> np.ndarray:
    """``log R(y)`` in float64 for ``0 ≤ y ≤ 8``: y²/2 and log erfc cancel to ≤ 1e-14 absolute."""
    erfc = np.vectorize(lambda v: math.erfc(v * SQRT_HALF))(y)
    return HALF_LOG_PI_OVER_2 + y * y / 2 + np.log(erfc)


# float32 log Φ(t) on [0, 4): pieces between _LOG_PHI_EDGES, a polynomial of degree 10 in
# s = t − left edge on each, which is exact (t is within 2× of the edge, or the edge is 0):
# the reference and real-data worst log_evidence errors sit at t ≈ 0.005, where rounding t
# to a centre would cost bits. ≤ 6.2e-8 absolute from mpmath (log1p(−ndtr(−t)): 1.0e-7),
# for 3 selects per term where ndtr evaluates erf and erfc in every lane. For t ≥ 4,
# log Φ = log1p(−Q), Q ≤ 3.2e-5, needs Q only to 1e-3 relative: φ(t)/(t + m(t)).
_LOG_PHI_EDGES = (0.0, 1.0, 2.0, 4.0)


_KL_TABLE = fit_piecewise(_kl_float64, _KL_TABLE_EDGES, 9)
_LOG_R_TABLE = fit_piecewise(_log_r_float64, (0.0, 4.0, _LOG_R_TABLE_TO), 12)
_LOG_PHI_TABLE = fit_piecewise(
    np.vectorize(lambda t: math.log1p(-0.5 * math.erfc(t * SQRT_HALF))), _LOG_PHI_EDGES, 10,
    about="left",
)  # fmt: skip


def _log_phi_float32(t: jax.Array) -> jax.Array:
    """``log Φ(t)`` for float32 ``t ≥ 0`` (NaN stays NaN)."""
    near = t < _LOG_PHI_EDGES[-1]
    acc = evaluate(_LOG_PHI_TABLE, jnp.where(near, t, 0))
    tf = jnp.where(near, _LOG_PHI_EDGES[-1], t)
    q = INV_SQRT_2PI * jnp.exp(-(tf * tf) / 2) / (tf + m_asymptotic(tf))
    return jnp.where(near, acc, -q * (1 + q / 2))  # log1p(−q) to q³/3 ≤ 1e-14


def _log1p_minus_x(x: jax.Array) -> jax.Array:
    """``log(1 + x) − x`` for ``0 ≤ x ≤ ½``, without cancellation.

    With ``s = x/(2 + x)``, ``log(1 + x) = 2·atanh(s)`` and ``x − 2s = s·x``, so
    ``log(1 + x) − x = −s·x + 2s³(1/3 + s²/5 + …)``; ``s ≤ 0.2``, so 8 terms reach 1e-17.
    """
    s = x / (2 + x)
    s2 = s * s
    acc = jnp.zeros_like(s)
    for k in range(8, 0, -1):
        acc = acc * s2 + 1 / (2 * k + 1)
    return 2 * s * s2 * acc - s * x


class AtOptimum(NamedTuple):
    """What ``log_evidence`` and ``kl_gap`` need from ``t``, from one shared evaluation."""

    log_tail: jax.Array  # log Φ(t) where t ≥ 0, log R(−t) where t < 0
    kl: jax.Array  # KL(q_θ* ‖ p(z|x))


def at_optimum(t: jax.Array) -> AtOptimum:
    r"""``log Φ(t)`` or ``log R(−t)``, and ``KL(q_θ* ‖ p(z|x))``, sharing every tail function.

    The KL is a function of ``t = B/√a`` alone; ≥ 0, → 1/(2t⁴) as t → −∞.
    With ``u = θ*/√a`` (``u² + tu − 2 = 0``):
    ``KL = u²/2 + 1/u² − 2 + log u + ½log 2π + log Φ(t)``, the form used for ``t ≥ 0``.
    For ``t < 0`` write ``y = −t``, ``w = u − y = 2/u`` and ``R(y) = 1/(y + m)``; the equal
    form ``−w²/4 + log1p(x)``, ``x = (w − m)/(y + m)``, has terms of order 1/y² and is used
    up to the continued-fraction cut-off. Beyond it its terms cancel to ``1/(2y⁴)``, so we
    split it as ``[log1p(x) − x] + [x − w²/4]`` with

    .. math::  x - \frac{w^2}{4} = \frac{d\,(1 + w^2/4) + w^3/8}{y + m}, \qquad
        d = \frac{w}{2} - m = \frac{w}{2}\,m\,\frac{q\,w\,(w - q_3)}{2},

    where ``m = 1/(y + q)``, ``q = 2/(y + q₃)`` come from the continued fraction: the
    difference of the two means ``1/u`` and ``m`` is formed from differences that do not
    cancel. Far out (``y > kl_series_from``), the series in ``1/y²``. In float32, on
    ``[−8, 4)`` every one of these forms cancels by 10–60×, so there ``KL`` comes from
    the table of :func:`_kl_table` instead, and the near form is never needed.

    ``log_evidence`` needs ``log Φ(t)`` (``t ≥ 0``) and ``log R(−t)`` (``t < 0``) of the same
    ``t``: computing them here lets one ``log1p(−Φ(−t))`` and one Mills-ratio evaluation serve
    both (XLA does not merge the two when they come from differently masked inputs).
    """
    if jnp.finfo(t.dtype).bits < 64:
        return _at_optimum_float32(t)
    k = tail_constants(t.dtype)
    nonneg = t >= 0
    # t ≥ 0; u = 2/(t/2 + √(t²/4 + 2)) so that t² cannot overflow.
    tp = jnp.where(nonneg, t, 0)
    log_phi = log_ndtr_nonneg(tp)
    kl_pos = kl_from_u(u_of_t(tp), log_phi)
    y = jnp.where(nonneg, 1, -t)
    pt = parts(y)
    series = y > k.kl_series_from
    cf = pt.far & ~series
    # 0 < y ≤ cf_from: the direct form loses at most ~4y² ulps.
    y_near = jnp.where(pt.far, 1, y)
    w = 4 / (y_near + jnp.sqrt(y_near * y_near + 8))
    m = jnp.where(pt.far, 1, pt.m)
    kl_near = jnp.log1p((w - m) / (y_near + m)) - w * w / 4
    # cf_from < y ≤ kl_series_from; the masks keep the unselected lanes finite (and their
    # gradients, which `where` multiplies by zero, too).
    y_cf = jnp.where(cf, y, k.cf_from + 1)
    m, q, q3 = (jnp.where(cf, v, 1) for v in (pt.m, pt.q, pt.q3))
    w = 4 / (y_cf + jnp.sqrt(y_cf * y_cf + 8))
    d = (w / 2) * m * (q * w * (w - q3) / 2)
    x = (w - m) / (y_cf + m)
    kl_cf = _log1p_minus_x(x) + (d * (1 + w * w / 4) + w * w * w / 8) / (y_cf + m)
    # y > kl_series_from.
    kl_far = _kl_series(1 / jnp.square(jnp.where(series, y, k.kl_series_from + 1)))
    kl_neg = jnp.where(series, kl_far, jnp.where(pt.far, kl_cf, kl_near))
    kl = jnp.maximum(jnp.where(nonneg, kl_pos, kl_neg), 0)
    return AtOptimum(jnp.where(nonneg, log_phi, pt.log_r), kl)


def _kl_series(e: jax.Array) -> jax.Array:
    """``KL`` for ``t → −∞`` from its series in ``e = 1/y²``."""
    acc = jnp.zeros_like(e)
    for c in reversed(_KL_SERIES):
        acc = acc * e + c
    return acc * e * e


def _at_optimum_float32(t: jax.Array) -> AtOptimum:
    """:func:`at_optimum` in float32: tables where the closed forms cancel, no continued fraction.

    ``log Φ(t)`` for ``t ≥ 0`` from its table on ``[0, 4)`` and ``φ(t)/(t + m(t))`` beyond;
    ``log R(y)`` from its table for ``y ≤ 8`` and as ``−log(y + m)`` with ``m`` from its
    asymptotic series beyond; the KL from the ``t ≥ 0``
    form for ``t ≥ 4``, its table on ``[−10, 4)`` and its ``1/y²`` series below. Every branch
    is evaluated in every lane (they are selected, not branched), so each is kept short.
    """
    k = tail_constants(t.dtype)
    nonneg = t >= 0
    tp = jnp.where(t < 0, 0, t)  # a NaN t stays NaN here
    log_phi = _log_phi_float32(tp)
    kl_pos = kl_from_u(u_of_t(tp), log_phi)
    y = jnp.where(nonneg, 1, -t)
    far = y > _LOG_R_TABLE_TO
    y_far = jnp.where(far, y, _LOG_R_TABLE_TO + 1)
    m_far = m_asymptotic(y_far)
    log_r = jnp.where(far, -jnp.log(y_far + m_far), evaluate(_LOG_R_TABLE, jnp.where(far, 0, y)))
    series = y > k.kl_series_from
    kl_far = _kl_series(1 / jnp.square(jnp.where(series, y, k.kl_series_from + 1)))
    in_table = (t >= _KL_TABLE_FROM) & (t < _KL_TABLE_TO)
    kl_tab = evaluate(_KL_TABLE, jnp.where(in_table, t, 0))
    # A NaN t fails every comparison and lands in kl_pos, which keeps it NaN.
    kl = jnp.where(in_table, kl_tab, jnp.where(series, kl_far, jnp.maximum(kl_pos, 0)))
    return AtOptimum(jnp.where(nonneg, log_phi, log_r), kl)


@jax.jit
def truncated_quantile(p: jax.Array, t: jax.Array) -> jax.Array:
    """Quantile p of Normal(t, 1) truncated to ``[0, ∞)``; finite even where Φ(t) underflows.

    ``t ≥ 0``: invert Φ on the side where the probability is small (``ndtri`` is accurate
    there). ``t < 0`` (``y = −t``): solve ``log Q(y + z) − log Q(y) = log(1 − p)`` for ``z`` by
    Newton's method. Its left side is concave and decreasing in ``z``, so Newton from the
    exponential approximation (the tangent at ``z = 0``) descends monotonically onto the root.
    The difference of log Mills ratios is formed without cancellation in the continued-fraction
    region, so ``z`` is accurate relative to itself even for tiny ``p`` and huge ``y``.
    """
    k = tail_constants(t.dtype)
    nonneg = t >= 0
    tp = jnp.where(nonneg, t, 0)
    phi_t = ndtr(tp)
    lower = ndtr(-tp) + p * phi_t  # P(ξ ≤ x) for the untruncated ξ
    upper = (1 - p) * phi_t
    below = lower <= 0.5
    x = ndtri(jnp.minimum(jnp.where(below, lower, upper), 0.5))
    x = jnp.where(below, x, -x)
    z_pos = jnp.maximum(tp + x, 0)

    y = jnp.where(nonneg, 1, -t)
    target = jnp.log1p(-p)
    at_y = parts(y)
    # Two upper bounds of the root, both where Newton descends monotonically: the tangent at 0
    # (exact far out, where the posterior is exponential) and the root without the log R term
    # (which only lowers the left side), −y + √(y² − 2·log(1 − p)), good near y = 0.
    z = jnp.minimum(-target / (y + at_y.m), -2 * target / (y + jnp.sqrt(y * y - 2 * target)))
    for _ in range(k.quantile_steps):
        yz = y + z
        at_yz = parts(yz)
        # log R(y + z) − log R(y); far out both are −log(· + m), so form their ratio first.
        d_far = -jnp.log1p((z + (at_yz.m - at_y.m)) / (y + at_y.m))
        d = jnp.where(at_y.far, d_far, at_yz.log_r - at_y.log_r)
        g = -z * (y + z / 2) + d - target
        z = jnp.maximum(z + g / (yz + at_yz.m), z / 2)
    return jnp.where(nonneg, z_pos, z)
