"""jaxvi: exact closed-form variational inference for the Exponential–Normal model, in bulk.

Model: ``z ~ Exponential(λ)``, ``x_i | z ~ Normal(z, σ²)``; variational family
``q_θ = Exponential(θ)``. For every dataset jaxvi computes B, the optimal θ*, the closed-form
ELBO and its gradient, and — because the true posterior is a truncated normal — the exact log
evidence and the exact KL gap.

The public names load on first use (SPEC 1 lazy loading): ``import jaxvi`` does not import
JAX, so the ``jaxvi`` command can start reading a file while JAX loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name → the private module that defines it (``__version__`` too: reading it from the
# installed distribution's metadata costs 40-60 ms of imports that ``import jaxvi`` skips).
_WHERE = {
    "__version__": "jaxvi._version",
    "fit": "jaxvi._fit.fit",
    "b": "jaxvi._model.closed_form",
    "elbo": "jaxvi._model.closed_form",
    "elbo_grad": "jaxvi._model.closed_form",
    "theta_star": "jaxvi._model.closed_form",
    "Padded": "jaxvi._stats.data",
    "Ragged": "jaxvi._stats.data",
    "estimate_lam": "jaxvi._model.empirical_bayes",
    "Posterior": "jaxvi._model.exact",
    "kl_gap": "jaxvi._model.exact",
    "log_evidence": "jaxvi._model.exact",
    "posterior": "jaxvi._model.exact",
    "posterior_quantile": "jaxvi._model.exact",
    "elbo_mc": "jaxvi._model.mc",
    "simulate": "jaxvi._stats.simulate",
    "Solution": "jaxvi._model.solve",
    "relative_grad": "jaxvi._model.solve",
    "solve": "jaxvi._model.solve",
    "SuffStats": "jaxvi._model.statistics",
    "suff_stats": "jaxvi._stats.padded",
    "suff_stats_ragged": "jaxvi._stats.ragged",
    "fit_table": "jaxvi._results.fit_table",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'jaxvi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs see
    from jaxvi._fit.fit import fit as fit
    from jaxvi._model.closed_form import b as b
    from jaxvi._model.closed_form import elbo as elbo
    from jaxvi._model.closed_form import elbo_grad as elbo_grad
    from jaxvi._model.closed_form import theta_star as theta_star
    from jaxvi._model.empirical_bayes import estimate_lam as estimate_lam
    from jaxvi._model.exact import Posterior as Posterior
    from jaxvi._model.exact import kl_gap as kl_gap
    from jaxvi._model.exact import log_evidence as log_evidence
    from jaxvi._model.exact import posterior as posterior
    from jaxvi._model.exact import posterior_quantile as posterior_quantile
    from jaxvi._model.mc import elbo_mc as elbo_mc
    from jaxvi._model.solve import Solution as Solution
    from jaxvi._model.solve import relative_grad as relative_grad
    from jaxvi._model.solve import solve as solve
    from jaxvi._model.statistics import SuffStats as SuffStats
    from jaxvi._results.fit_table import fit_table as fit_table
    from jaxvi._stats.data import Padded as Padded
    from jaxvi._stats.data import Ragged as Ragged
    from jaxvi._stats.padded import suff_stats as suff_stats
    from jaxvi._stats.ragged import suff_stats_ragged as suff_stats_ragged
    from jaxvi._stats.simulate import simulate as simulate
    from jaxvi._version import __version__ as __version__
