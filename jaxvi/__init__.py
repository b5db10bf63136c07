"""jaxvi: exact closed-form variational inference for the Exponential–Normal model, in bulk.

Model: ``z ~ Exponential(λ)``, ``x_i | z ~ Normal(z, σ²)``; variational family
``q_θ = Exponential(θ)``. For every dataset jaxvi computes B, the optimal θ*, the closed-form
ELBO and its gradient, and — because the true posterior is a truncated normal — the exact log
evidence and the exact KL gap.
"""

from importlib.metadata import PackageNotFoundError, version

from jaxvi._batch import fit as fit
from jaxvi._closed_form import b as b
from jaxvi._closed_form import elbo as elbo
from jaxvi._closed_form import elbo_grad as elbo_grad
from jaxvi._closed_form import theta_star as theta_star
from jaxvi._data import Padded as Padded
from jaxvi._data import Ragged as Ragged
from jaxvi._empirical_bayes import estimate_lam as estimate_lam
from jaxvi._exact import Posterior as Posterior
from jaxvi._exact import kl_gap as kl_gap
from jaxvi._exact import log_evidence as log_evidence
from jaxvi._exact import posterior as posterior
from jaxvi._exact import posterior_quantile as posterior_quantile
from jaxvi._mc import elbo_mc as elbo_mc
from jaxvi._simulate import simulate as simulate
from jaxvi._solve import Solution as Solution
from jaxvi._solve import relative_grad as relative_grad
from jaxvi._solve import solve as solve
from jaxvi._stats import SuffStats as SuffStats
from jaxvi._stats import suff_stats as suff_stats
from jaxvi._stats import suff_stats_ragged as suff_stats_ragged

try:
    __version__ = version("jaxvi")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "Padded",
    "Posterior",
    "Ragged",
    "Solution",
    "SuffStats",
    "__version__",
    "b",
    "elbo",
    "elbo_grad",
    "elbo_mc",
    "estimate_lam",
    "fit",
    "kl_gap",
    "log_evidence",
    "posterior",
    "posterior_quantile",
    "relative_grad",
    "simulate",
    "solve",
    "suff_stats",
    "suff_stats_ragged",
    "theta_star",
]
