"""The numbers behind ``jaxvi report``: how good is q* = Exponential(θ*)?

From a results table written by ``jaxvi fit`` (and optionally the simulation's truth), this
module computes

* the gap between q*'s mean 1/θ* and the exact posterior mean, in posterior sds;
* the KL gap KL(q* ‖ p(z|x)) as a function of the dataset size N;
* with the truth, the coverage of the true z by 95% equal-tailed intervals of q* (Exponential
  quantiles ``−log(1 − p)/θ``) and of the exact posterior (:func:`jaxvi.posterior_quantile`),

and the text of ``summary.txt``; :mod:`jaxvi._study.plots` draws them and writes the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._model.dtypes import default_float
from jaxvi._model.exact import posterior_quantile
from jaxvi._model.params import positive
from jaxvi._model.statistics import SuffStats
from jaxvi._results.read_back import read_columns, read_metadata
from jaxvi._tables.statistics import show
from jaxvi._text import format_table

__all__ = [
    "Coverage",
    "Study",
    "coverage",
    "exact_interval",
    "load_study",
    "q_interval",
    "size_bins",
    "summary_text",
]

LEVEL = 0.95
_RESULT_NEEDS = ("dataset_id", "n", "b", "theta", "kl_gap", "q_mean", "post_mean", "post_sd")


def q_interval(theta: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of q = Exponential(θ): quantiles ``−log(1 − p)/θ``.

    Args:
        theta: ``(D,)`` rates.
        level: the interval's probability.

    Returns:
        ``(low, high)``, each ``(D,)``.

    Examples:
        >>> lo, hi = q_interval(np.array([1.0]))
        >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
        (0.0253, 3.6889)
    """
    tail = (1 - level) / 2
    theta = np.asarray(theta, np.float64)
    return -np.log1p(-tail) / theta, -np.log(tail) / theta


def _pad(num: int) -> int:
    # A few padded sizes: one compiled program serves every table up to 4096 datasets.
    return max(1 << 12, 1 << max(num - 1, 0).bit_length())


def _same_posterior(n: jax.Array, b: jax.Array, lam, sigma) -> SuffStats:
    # The posterior depends on the data only through a = n/σ² and B, so Σx = (B + λ)σ² and any
    # Σx² give back the posterior of the original data (to a few ulp of |B| + λ in B).
    zeros = jnp.zeros_like(n)
    return SuffStats(n, (b + lam) * (sigma * sigma), zeros, zeros)


@jax.jit
def _exact_interval(n, b, lam, sigma, tail):
    stats = _same_posterior(n, b, lam, sigma)
    return (
        posterior_quantile(tail, stats, lam, sigma),
        posterior_quantile(1 - tail, stats, lam, sigma),
    )


def _padded(fn, n, b, *args):
    num = len(n)
    dtype = default_float()
    pad = lambda v: np.pad(np.asarray(v, dtype), (0, _pad(num) - num))
    return tuple(np.asarray(out)[:num] for out in fn(pad(n), pad(b), *args))


def exact_interval(
    n: np.ndarray, b: np.ndarray, lam: float, sigma: float, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of the exact posterior (:func:`jaxvi.posterior_quantile`).

    Args:
        n: ``(D,)`` dataset sizes.
        b: ``(D,)`` B values.
        lam: prior rate λ used for the fit.
        sigma: noise scale σ used for the fit.
        level: the interval's probability.

    Returns:
        ``(low, high)``, each ``(D,)``, in the working float dtype.

    Examples:
        >>> lo, hi = exact_interval(np.array([0.0]), np.array([-1.0]), lam=1.0, sigma=1.0)
        >>> round(float(lo[0]), 4), round(float(hi[0]), 4)  # the prior's own interval
        (0.0253, 3.6889)
    """
    return _padded(_exact_interval, n, b, lam, sigma, (1 - level) / 2)


@dataclass(frozen=True)
class Study:
    """A results table, with the truth joined on when there is one; arrays are ``(D,)``."""

    path: Path
    columns: dict[str, np.ndarray]
    lam: float
    sigma: float
    dtype: str
    z: np.ndarray | None  # true z per result row, or None
    unmatched_truth: int  # truth rows with no result row (empty datasets have no data rows)


def _meta_float(meta: dict[str, str], key: str, given: float | None, path: Path) -> float:
    if given is not None:
        return float(given)
    if key not in meta:
        raise ValueError(
            f"{path}: no {key} in the file's metadata; pass --{key} with the value used to fit"
        )
    return float(meta[key])


def load_study(
    results: str | os.PathLike,
    truth: str | os.PathLike | None = None,
    *,
    lam: float | None = None,
    sigma: float | None = None,
) -> Study:
    """Read a results table (and the truth) and join them by ``dataset_id``.

    λ and σ come from the results' metadata unless given.

    Raises:
        ValueError: naming the file, the missing column, or the dataset id that does not match.
    """
    results = Path(results)
    cols = read_columns(results, _RESULT_NEEDS)
    meta = read_metadata(results)
    lam_v = _meta_float(meta, "lam", lam, results)
    sigma_v = _meta_float(meta, "sigma", sigma, results)
    for name, value in (("lam", lam_v), ("sigma", sigma_v)):
        positive(f"--{name}", value)
    z = None
    unmatched = 0
    if truth is not None:
        truth = Path(truth)
        tcols = read_columns(truth, ("dataset_id", "n", "z"))
        ids, tids = cols["dataset_id"], tcols["dataset_id"]
        if ids.dtype.kind != tids.dtype.kind:
            raise ValueError(
                f"{truth}: dataset ids are {tids.dtype} but {results} has {ids.dtype} ids"
            )
        order = np.argsort(tids, kind="stable")
        pos = np.clip(np.searchsorted(tids, ids, sorter=order), 0, len(tids) - 1)
        idx = order[pos]
        missing = tids[idx] != ids
        if missing.any():
            raise ValueError(f"{truth}: no truth for dataset {show(ids[np.argmax(missing)])}")
        wrong_n = tcols["n"][idx] != cols["n"]
        if wrong_n.any():
            i = int(np.argmax(wrong_n))
            raise ValueError(
                f"{truth}: dataset {show(ids[i])} has n = {int(tcols['n'][idx[i]])} in "
                f"the truth but {int(cols['n'][i])} in {results}"
            )
        z = np.asarray(tcols["z"], np.float64)[idx]
        unmatched = len(tids) - len(np.unique(idx))
    return Study(results, cols, lam_v, sigma_v, meta.get("dtype", "float32"), z, unmatched)


@dataclass(frozen=True)
class Coverage:
    """How often 95% intervals hold the true z, overall and per size bin."""

    q_star: float
    exact: float
    q_star_width: float  # median interval width
    exact_width: float
    bins: np.ndarray  # (K + 1,) edges in N
    q_star_by_bin: np.ndarray  # (K,)
    exact_by_bin: np.ndarray
    count_by_bin: np.ndarray


def size_bins(n: np.ndarray, max_bins: int = 12) -> np.ndarray:
    lo, hi = int(n.min()), int(n.max())
    if hi - lo < max_bins:
        return np.arange(lo, hi + 2) - 0.5
    edges = np.unique(np.round(np.quantile(n, np.linspace(0, 1, max_bins + 1))))
    edges[-1] = hi + 1
    return edges - 0.5


def coverage(study: Study) -> Coverage:
    """Coverage of the true z by the 95% intervals of q* and of the exact posterior."""
    if study.z is None:
        raise ValueError("coverage needs the truth (--truth)")
    c = study.columns
    q_lo, q_hi = q_interval(c["theta"])
    e_lo, e_hi = exact_interval(c["n"], c["b"], study.lam, study.sigma)
    z = study.z
    q_in = (q_lo <= z) & (z <= q_hi)
    e_in = (e_lo <= z) & (z <= e_hi)
    bins = size_bins(c["n"])
    which = np.clip(np.digitize(c["n"], bins) - 1, 0, len(bins) - 2)
    count = np.bincount(which, minlength=len(bins) - 1)
    safe = np.maximum(count, 1)
    return Coverage(
        q_star=float(q_in.mean()),
        exact=float(e_in.mean()),
        q_star_width=float(np.median(q_hi - q_lo)),
        exact_width=float(np.median(e_hi - e_lo)),
        bins=bins,
        q_star_by_bin=np.bincount(which, q_in, len(bins) - 1) / safe,
        exact_by_bin=np.bincount(which, e_in, len(bins) - 1) / safe,
        count_by_bin=count,
    )


def summary_text(study: Study, cov: Coverage | None) -> str:
    """The text of ``summary.txt``."""
    c = study.columns
    n = c["n"]
    kl = c["kl_gap"]
    gap = np.abs(c["q_mean"] - c["post_mean"]) / c["post_sd"]
    q = lambda v: " / ".join(f"{x:.3g}" for x in np.quantile(v, (0.01, 0.5, 0.99)))
    rows = [
        ("datasets", f"{len(n):,}"),
        ("dataset size N (min / median / max)", f"{n.min()} / {np.median(n):g} / {n.max()}"),
        ("lambda, sigma, dtype", f"{study.lam:g}, {study.sigma:g}, {study.dtype}"),
        ("theta* (q01 / q50 / q99)", q(c["theta"])),
        ("KL gap [nats] (q01 / q50 / q99)", q(kl)),
        ("KL gap max", f"{kl.max():.3g} (at N = {n[np.argmax(kl)]})"),
        ("|1/theta* - E[z|x]| / sd(z|x)", f"median {np.median(gap):.3f}, max {gap.max():.3f}"),
    ]
    if cov is not None:
        se = np.sqrt(LEVEL * (1 - LEVEL) / len(n))
        rows += [
            ("coverage of the true z by 95% intervals", f"(nominal 0.95, binomial s.e. {se:.4f})"),
            (
                "  q* = Exponential(theta*)",
                f"{cov.q_star:.4f}  median width {cov.q_star_width:.3g}",
            ),
            ("  exact posterior", f"{cov.exact:.4f}  median width {cov.exact_width:.3g}"),
        ]
        if study.unmatched_truth:
            rows.append(
                (
                    "truth rows without a result",
                    f"{study.unmatched_truth:,} (empty datasets have no rows in a long table)",
                )
            )
    lines = [f"jaxvi report: {study.path}", *format_table(rows, align="<<")]
    return "\n".join(lines) + "\n"
