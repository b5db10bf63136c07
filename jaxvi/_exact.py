r"""The exact side: log evidence, KL gap, the truncated-normal posterior and its quantiles.

The posterior of ``z`` is Normal(B/a, 1/a) truncated to ``z ≥ 0``. With ``t = B/√a``:

.. math::

    \log p(x) = C - 1 + \frac{B^2}{2a} + \tfrac12\log\frac{2\pi}{a} + \log\Phi(t), \qquad
    \mathrm{KL}(q_{\theta^*}\,\|\,p(z\mid x)) = \log p(x) - \mathrm{ELBO}(\theta^*).

Every function is elementwise and safe in the tails (see :mod:`jaxvi._tails`). An empty
dataset (``n = 0``) has the prior as posterior: log p = 0, KL = 0, mean 1/λ, variance 1/λ².
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtri
from jax.typing import ArrayLike

from jaxvi._closed_form import HALF_LOG_2PI, Model, _theta_star, log_prior_const, model
from jaxvi._stats import SuffStats
from jaxvi._tails import kl_at_optimum, log_mills_ratio, mills

__all__ = ["Posterior", "kl_gap", "log_evidence", "posterior", "posterior_quantile"]


class Posterior(NamedTuple):
    """The exact posterior Normal(loc, scale²) truncated to ``z ≥ 0``; fields of shape ``(...)``.

    For an empty dataset ``loc = −inf`` and ``scale = inf``; ``mean`` and ``var`` are then the
    prior's, 1/λ and 1/λ².
    """

    loc: jax.Array
    scale: jax.Array
    mean: jax.Array
    var: jax.Array


class _Standard(NamedTuple):
    m: Model
    has_data: jax.Array  # n > 0
    sqrt_a: jax.Array  # √a, 1 where n = 0
    t: jax.Array  # B/√a, −inf where n = 0


def _standardise(stats: SuffStats, lam: ArrayLike, sigma: ArrayLike) -> _Standard:
    m = model(stats, lam, sigma)
    has_data = m.stats.n > 0
    sqrt_a = jnp.sqrt(jnp.where(has_data, m.a, 1))
    t = jnp.where(has_data, m.b / sqrt_a, -jnp.inf)
    return _Standard(m, has_data, sqrt_a, t)


def log_evidence(stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0) -> jax.Array:
    r"""The exact log marginal likelihood :math:`\log p(x)`.

    For ``t ≥ 0`` the uncentred ``Σx²`` cancels against ``B²/(2a)``, so we use
    :math:`-\frac{\sum(x-\bar x)^2}{2v} - \lambda\bar x + \frac{\lambda^2 v}{2n}` in their
    place. For ``t < 0``, ``B²/(2a) + log Φ(t) = log R(−t) − ½log 2π + log … `` is formed
    through the Mills ratio (``erfcx``), which has no cancelling terms.

    Args:
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.

    Returns:
        ``(...)`` array of log p(x); 0 for an empty dataset.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, log_evidence
        >>> float(log_evidence(SuffStats(jnp.array(0.0), jnp.array(0.0), jnp.array(0.0))))
        0.0
    """
    s = _standardise(stats, lam, sigma)
    m = s.m
    n_safe = jnp.where(s.has_data, m.stats.n, 1)
    log_sigma = jnp.log(m.sigma)
    # ½·log(2π/a) = ½log 2π − ½log n + log σ
    half_log_2pi_over_a = HALF_LOG_2PI - 0.5 * jnp.log(n_safe) + log_sigma
    t_nonneg = s.t >= 0
    # t ≥ 0: centred form.
    xbar = m.stats.shift + m.stats.sum_x / n_safe
    centred = (
        -m.stats.centred_sum_sq() / (2 * m.v)
        - m.lam * xbar
        + m.lam * (m.lam * m.v) / (2 * n_safe)
        - n_safe * (HALF_LOG_2PI + log_sigma)
        + jnp.log(m.lam)
        + half_log_2pi_over_a
        + log_ndtr(jnp.where(t_nonneg, s.t, 0))
    )
    # t < 0: C − 1 + ½log(2π/a) + log Φ(t) + t²/2 = C − 1 − ½log a + log R(−t).
    y = jnp.where(t_nonneg, 0, -s.t)
    uncentred = log_prior_const(m) + (
        -0.5 * jnp.log(n_safe) + log_sigma + log_mills_ratio(jnp.where(s.has_data, y, 0))
    )
    out = jnp.where(t_nonneg, centred, uncentred)
    return jnp.where(s.has_data, out, jnp.zeros_like(out))


def kl_gap(
    stats: SuffStats,
    lam: ArrayLike = 1.0,
    sigma: ArrayLike = 1.0,
    *,
    theta: ArrayLike | None = None,
) -> jax.Array:
    r"""``KL(q_θ ‖ p(z|x)) = log p(x) − ELBO(θ)`` without forming either side.

    At θ* it is a function of ``t = B/√a`` alone (:func:`jaxvi._tails.kl_at_optimum`). At
    another θ we add ``ELBO(θ*) − ELBO(θ) = a(1/θ* − 1/θ)² + (j − 1 − log j)`` with
    ``j = θ*/θ``: every term is ≥ 0, so nothing cancels and the result is ≥ 0.

    Args:
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.
        theta: rate of q, broadcastable to ``(...)``; θ* when ``None``.

    Returns:
        ``(...)`` array of KL ≥ 0 (0 at θ* for an empty dataset).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, kl_gap
        >>> st = SuffStats(jnp.array(0.0), jnp.array(0.0), jnp.array(0.0))
        >>> round(float(kl_gap(st, lam=1.0, theta=2.0)), 6)  # KL(Exp(2) ‖ Exp(1))
        0.193147
    """
    s = _standardise(stats, lam, sigma)
    kl = jnp.where(s.has_data, kl_at_optimum(s.t), 0)
    if theta is None:
        return kl
    theta = jnp.asarray(theta, kl.dtype)
    th_star = _theta_star(s.m.b, s.m.a)
    j = th_star / theta
    d = 1 / th_star - 1 / theta
    return kl + s.m.a * (d * d) + ((j - 1) - jnp.log1p(j - 1))


def posterior(stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0) -> Posterior:
    """The exact posterior: Normal(B/a, 1/a) truncated to ``z ≥ 0``, with its mean and variance.

    Args:
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.

    Returns:
        :class:`Posterior` with fields of shape ``(...)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, posterior
        >>> p = posterior(SuffStats(jnp.array(0.0), jnp.array(0.0), jnp.array(0.0)), lam=2.0)
        >>> float(p.mean), float(p.var)
        (0.5, 0.25)
    """
    s = _standardise(stats, lam, sigma)
    ml = mills(jnp.where(s.has_data, s.t, 0))
    scale = 1 / s.sqrt_a
    mean = jnp.where(s.has_data, ml.m * scale, 1 / s.m.lam)
    var = jnp.where(s.has_data, ml.var * (scale * scale), 1 / (s.m.lam * s.m.lam))
    loc = jnp.where(s.has_data, s.m.b / jnp.where(s.has_data, s.m.a, 1), -jnp.inf)
    return Posterior(loc, jnp.where(s.has_data, scale, jnp.inf), mean, var)


def _truncated_quantile(p: jax.Array, t: jax.Array) -> jax.Array:
    """Quantile p of Normal(t, 1) truncated to ``[0, ∞)``, finite even where Φ(t) underflows."""
    dtype = t.dtype
    far_from = 5.0 if jnp.finfo(dtype).bits < 64 else 8.0
    far = t < -far_from
    # Near: invert Φ on the side where the probability is small (ndtri is accurate there).
    t_near = jnp.where(far, 0, t)
    phi_t = jnp.exp(log_ndtr(t_near))
    lower = jnp.exp(log_ndtr(-t_near)) + p * phi_t  # P(ξ ≤ x) for the untruncated ξ
    upper = (1 - p) * phi_t
    x = jnp.where(lower <= 0.5, ndtri(jnp.minimum(lower, 0.5)), -ndtri(jnp.minimum(upper, 0.5)))
    z_near = jnp.maximum(t_near + x, 0)
    # Far: solve log Q(y + z) − log Q(y) = log(1 − p) for z by Newton from the exponential
    # approximation; log Q(y + z) − log Q(y) = −yz − z²/2 + log R(y + z) − log R(y).
    y = jnp.where(far, -t, far_from + 1)
    target = jnp.log1p(-p)
    log_r_y = log_mills_ratio(y)
    hazard_y = y + mills(-y).m
    z = -target / hazard_y
    for _ in range(6):
        h = -y * z - z * z / 2 + log_mills_ratio(y + z) - log_r_y - target
        hazard = (y + z) + mills(-(y + z)).m
        z = jnp.maximum(z + h / hazard, z / 2)
    return jnp.where(far, z, z_near)


def posterior_quantile(
    p: ArrayLike, stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0
) -> jax.Array:
    """Quantiles of the exact posterior, for credible intervals.

    Finite wherever Φ(t) underflows: far in the left tail the posterior is near-exponential and
    the quantile is found by Newton steps on the log tail probability.

    Args:
        p: probabilities in (0, 1), broadcastable against the batch.
        stats: :class:`~jaxvi.SuffStats` of batch shape ``(...)``.
        lam: prior rate λ, broadcastable to ``(...)``.
        sigma: noise scale σ, broadcastable to ``(...)``.

    Returns:
        Array of quantiles, the broadcast shape of ``p`` and the batch.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats, posterior_quantile
        >>> st = SuffStats(jnp.array(0.0), jnp.array(0.0), jnp.array(0.0))
        >>> round(float(posterior_quantile(0.5, st, lam=1.0)), 6)  # the prior's median, log 2
        0.693147
    """
    s = _standardise(stats, lam, sigma)
    p = jnp.asarray(p, s.t.dtype)
    t = jnp.where(s.has_data, s.t, 0)
    z = _truncated_quantile(p, t)
    prior_q = -jnp.log1p(-p) / s.m.lam
    return jnp.where(s.has_data, z / s.sqrt_a, prior_q)
