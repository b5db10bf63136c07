r"""The exact side: log evidence, KL gap, the truncated-normal posterior and its quantiles.

The posterior of ``z`` is Normal(B/a, 1/a) truncated to ``z ≥ 0``. With ``t = B/√a``:

.. math::

    \log p(x) = C - 1 + \frac{B^2}{2a} + \tfrac12\log\frac{2\pi}{a} + \log\Phi(t), \qquad
    \mathrm{KL}(q_{\theta^*}\,\|\,p(z\mid x)) = \log p(x) - \mathrm{ELBO}(\theta^*).

Every function is elementwise, jitted, and safe in the tails (see :mod:`jaxvi._model.tails`);
``t`` comes from the compensated ``B`` of :func:`jaxvi._model.coefficients.model`, so it is right to
about an ulp however much ``Σx/σ²`` and ``λ`` cancel. An empty dataset (``n = 0``) has the
prior as posterior: log p = 0, KL = 0, mean 1/λ, variance 1/λ². Kernels never raise on values:
an invalid dataset (λ ≤ 0, σ ≤ 0, non-finite statistics) gives NaN in its own row only.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvi._model.coefficients import Model, log_prior_const, model
from jaxvi._model.mills import HALF_LOG_2PI, mills
from jaxvi._model.statistics import SuffStats
from jaxvi._model.tails import AtOptimum, at_optimum, truncated_quantile, u_of_t

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
    sqrt_a: jax.Array  # √a = √n/σ, 1 where n = 0
    t: jax.Array  # B/√a = B·σ/√n, 0 where n = 0


def _standardise(stats: SuffStats, lam: ArrayLike, sigma: ArrayLike) -> _Standard:
    m = model(stats, lam, sigma)
    has_data = m.stats.n > 0
    sqrt_n = jnp.sqrt(jnp.where(has_data, m.stats.n, 1))
    sigma_safe = jnp.where(has_data, m.sigma, 1)
    # m.b is B to about one rounding however much Σx/v and λ cancel (compensated in
    # model()); the KL gap and the posterior moments are functions of t and inherit that.
    t = jnp.where(has_data, m.b * sigma_safe / sqrt_n, 0)
    return _Standard(m, has_data, sqrt_n / sigma_safe, t)


@jax.jit
def log_evidence(stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0) -> jax.Array:
    r"""The exact log marginal likelihood :math:`\log p(x)`.

    .. math::

        \log p(x) = -\frac{\sum x^2}{2v} - n\log(\sqrt{2\pi}\sigma) + \log\lambda
        + \frac{B^2}{2a} + \tfrac12\log\frac{2\pi}{a} + \log\Phi(t), \qquad t = B/\sqrt a.

    For ``t ≥ 0`` the uncentred ``Σx²`` cancels against ``B²/(2a)``, so we use
    :math:`-\frac{\sum(x-\bar x)^2}{2v} - \lambda\bar x + \frac{\lambda^2 v}{2n}` in their
    place. For ``t < 0``, ``B²/(2a) + ½log 2π + log Φ(t) = log R(−t)``, the log Mills ratio,
    which has no cancelling terms however far out ``t`` is.

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
        >>> st = SuffStats(jnp.array(1.0), jnp.array(-40.0), jnp.array(1600.0))
        >>> round(float(log_evidence(st)), 4)  # far past where Φ(t) underflows
        -804.6331
    """
    s = _standardise(stats, lam, sigma)
    return _log_evidence(s, at_optimum(s.t))


def _log_evidence(s: _Standard, at: AtOptimum) -> jax.Array:
    """:func:`log_evidence` from the standardised data and the tail functions at its ``t``."""
    m = s.m
    n_safe = jnp.where(s.has_data, m.stats.n, 1)
    log_sigma = jnp.log(m.sigma)
    t_nonneg = s.t >= 0
    # t ≥ 0: centred form; ½·log(2π/a) = ½log 2π − ½log n + log σ.
    xbar = m.stats.shift + m.stats.sum_x / n_safe
    centred = (
        -m.stats.centred_sum_sq() / (2 * m.v)
        - m.lam * xbar
        + m.lam * (m.lam * m.v) / (2 * n_safe)
        - n_safe * (HALF_LOG_2PI + log_sigma)
        + jnp.log(m.lam)
        + (HALF_LOG_2PI - 0.5 * jnp.log(n_safe) + log_sigma)
        + at.log_tail
    )
    # t < 0: C − 1 + ½log(2π/a) + log Φ(t) + t²/2 = C − 1 − ½log a + log R(−t).
    uncentred = log_prior_const(m) + ((log_sigma - 0.5 * jnp.log(n_safe)) + at.log_tail)
    out = jnp.where(t_nonneg, centred, uncentred)
    return jnp.where(s.has_data, out, jnp.zeros_like(out))


@jax.jit
def kl_gap(
    stats: SuffStats,
    lam: ArrayLike = 1.0,
    sigma: ArrayLike = 1.0,
    *,
    theta: ArrayLike | None = None,
) -> jax.Array:
    r"""``KL(q_θ ‖ p(z|x)) = log p(x) − ELBO(θ)`` without forming either side.

    At θ* it is a function of ``t = B/√a`` alone (:func:`jaxvi._model.tails.at_optimum`). At
    another θ we add

    .. math::

        \mathrm{ELBO}(\theta^*) - \mathrm{ELBO}(\theta)
        = a\Big(\frac1{\theta^*} - \frac1\theta\Big)^2 + (j - 1 - \log j),
        \qquad j = \theta^*/\theta,

    whose terms are both ≥ 0, so nothing cancels and the result is ≥ 0. For an empty dataset
    θ* = λ and this is KL(Exp(θ) ‖ Exp(λ)).

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
        >>> st = SuffStats(jnp.array(1.0), jnp.array(-40.0), jnp.array(1600.0))
        >>> float(kl_gap(st))  # ≈ 1/(2t⁴): q* is almost exact far in the tail
        1.75...e-07
    """
    s = _standardise(stats, lam, sigma)
    return _kl_gap(s, at_optimum(s.t), theta)


def _kl_gap(s: _Standard, at: AtOptimum, theta: ArrayLike | None) -> jax.Array:
    """:func:`kl_gap` from the standardised data and the tail functions at its ``t``."""
    kl = jnp.where(s.has_data, at.kl, 0)
    if theta is None:
        return kl
    theta = jnp.asarray(theta, kl.dtype)
    # In units of 1/√a: θ*/√a = u and √a/θ = c, so a(1/θ* − 1/θ)² = (1/u − c)² and j = u·c.
    u = u_of_t(s.t)
    c = s.sqrt_a / theta
    j = jnp.where(s.has_data, u * c, s.m.lam / theta)
    quad = jnp.where(s.has_data, jnp.square(1 / u - c), 0)
    return kl + quad + ((j - 1) - jnp.log(j))


def log_evidence_and_kl_gap(
    stats: SuffStats, lam: ArrayLike, sigma: ArrayLike, theta: ArrayLike | None
) -> tuple[jax.Array, jax.Array]:
    """:func:`log_evidence` and :func:`kl_gap` from one standardisation and tail evaluation."""
    s = _standardise(stats, lam, sigma)
    at = at_optimum(s.t)
    return _log_evidence(s, at), _kl_gap(s, at, theta)


@jax.jit
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
        >>> p = posterior(SuffStats(jnp.array(4.0), jnp.array(8.0), jnp.array(20.0)), lam=1.0)
        >>> round(float(p.loc), 4), round(float(p.scale), 4), round(float(p.mean), 4)
        (1.75, 0.5, 1.7504)
    """
    s = _standardise(stats, lam, sigma)
    ml = mills(s.t)
    scale = 1 / s.sqrt_a
    mean = jnp.where(s.has_data, ml.m * scale, 1 / s.m.lam)
    var = jnp.where(s.has_data, ml.var * (scale * scale), 1 / (s.m.lam * s.m.lam))
    loc = jnp.where(s.has_data, s.m.b / jnp.where(s.has_data, s.m.a, 1), -jnp.inf)
    return Posterior(loc, jnp.where(s.has_data, scale, jnp.inf), mean, var)


@jax.jit
def posterior_quantile(
    p: ArrayLike, stats: SuffStats, lam: ArrayLike = 1.0, sigma: ArrayLike = 1.0
) -> jax.Array:
    """Quantiles of the exact posterior, for credible intervals.

    Finite wherever Φ(t) underflows: for ``t < 0`` the quantile is found by Newton steps on
    the log tail probability (:func:`jaxvi._model.tails.truncated_quantile`). For an empty dataset
    it is the prior's, ``−log(1 − p)/λ``.

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
        >>> st = SuffStats(jnp.array(1.0), jnp.array(-1e4), jnp.array(1e8))
        >>> posterior_quantile(jnp.array([0.025, 0.975]), st).tolist()  # Φ(t) = 0 in float32
        [2.53...e-06, 0.000368...]
    """
    s = _standardise(stats, lam, sigma)
    p = jnp.asarray(p, s.t.dtype)
    z = truncated_quantile(p, s.t)
    prior_q = -jnp.log1p(-p) / s.m.lam
    return jnp.where(s.has_data, z / s.sqrt_a, prior_q)
