"""The numbers and plots behind ``jaxvi report``: how good is q* = Exponential(θ*)?

From a results table written by ``jaxvi fit`` (and optionally the simulation's truth), this
module computes

* the gap between q*'s mean 1/θ* and the exact posterior mean, in posterior sds;
* the KL gap KL(q* ‖ p(z|x)) as a function of the dataset size N;
* with the truth, the coverage of the true z by 95% equal-tailed intervals of q* (Exponential
  quantiles ``−log(1 − p)/θ``) and of the exact posterior (:func:`jaxvi.posterior_quantile`),

and writes PNG plots (matplotlib's Agg canvas, no display needed) and ``summary.txt``.
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
from jaxvi._tables.engine import INSTALL_HINT
from jaxvi._tables.files import atomic_path, read_columns, read_metadata
from jaxvi._tables.statistics import show
from jaxvi._text import format_table

__all__ = [
    "Coverage",
    "Study",
    "exact_interval",
    "load_study",
    "q_interval",
    "write_report",
]

LEVEL = 0.95
_SCATTER_MAX = 20_000  # points drawn in a scatter; binned statistics use every dataset
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


def _size_bins(n: np.ndarray, max_bins: int = 12) -> np.ndarray:
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
    bins = _size_bins(c["n"])
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


def _figure():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(f"plots need matplotlib, which is not installed; {INSTALL_HINT}") from None
    # A bare Figure draws on the Agg canvas: no pyplot state, no display.
    return Figure(figsize=(9, 4), layout="constrained")


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _subsample(num: int) -> np.ndarray:
    if num <= _SCATTER_MAX:
        return np.arange(num)
    return np.sort(np.random.default_rng(0).choice(num, _SCATTER_MAX, replace=False))


def _binned_quantiles(n: np.ndarray, y: np.ndarray, probs=(0.1, 0.5, 0.9)):
    bins = _size_bins(n, max_bins=40)
    which = np.clip(np.digitize(n, bins) - 1, 0, len(bins) - 2)
    centres, rows = [], []
    for k in range(len(bins) - 1):
        sel = y[which == k]
        if sel.size:
            centres.append(float(np.median(n[which == k])))
            rows.append(np.quantile(sel, probs))
    return np.array(centres), np.array(rows)


def plot_means(study: Study, path: Path) -> None:
    """q*'s mean 1/θ* against the exact posterior mean, and their gap in posterior sds vs N."""
    c = study.columns
    fig = _figure()
    left, right = fig.subplots(1, 2)
    idx = _subsample(len(c["n"]))
    pm, qm = c["post_mean"][idx], c["q_mean"][idx]
    art = left.scatter(pm, qm, c=c["n"][idx], s=4, alpha=0.5, cmap="viridis", rasterized=True)
    lo = float(max(min(pm.min(), qm.min()), 1e-12))
    hi = float(max(pm.max(), qm.max()))
    left.plot([lo, hi], [lo, hi], "k--", lw=1, label="1/θ* = E[z | x]")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="exact posterior mean E[z | x]",
        ylabel="q* mean 1/θ*",
        title="q* mean vs exact posterior mean",
    )
    left.legend(loc="upper left")
    fig.colorbar(art, ax=left, label="dataset size N")
    gap = (c["q_mean"] - c["post_mean"]) / c["post_sd"]
    centres, qs = _binned_quantiles(c["n"], gap)
    right.scatter(
        c["n"][idx], gap[idx], s=3, alpha=0.2, color="tab:gray", rasterized=True, zorder=1
    )
    right.fill_between(
        centres, qs[:, 0], qs[:, 2], color="tab:blue", alpha=0.35, label="10%–90%", zorder=2
    )
    right.plot(centres, qs[:, 1], color="tab:blue", label="median", zorder=3)
    right.axhline(0, color="k", lw=1, ls="--")
    right.set(
        xlabel="dataset size N",
        ylabel="(1/θ* − E[z | x]) / sd(z | x)",
        title="gap between the means, in posterior sds",
    )
    right.legend()
    _save(fig, path)


def plot_kl(study: Study, path: Path) -> None:
    """The KL gap KL(q* ‖ p(z | x)) against the dataset size N (log scale)."""
    c = study.columns
    fig = _figure()
    ax = fig.subplots()
    kl = c["kl_gap"]
    positive = kl > 0
    idx = _subsample(len(kl))
    idx = idx[positive[idx]]
    ax.scatter(
        c["n"][idx], kl[idx], s=3, alpha=0.2, color="tab:gray", rasterized=True, label="datasets"
    )
    if positive.any():
        centres, qs = _binned_quantiles(c["n"][positive], kl[positive])
        ax.plot(centres, qs[:, 1], color="tab:red", label="median")
        ax.fill_between(centres, qs[:, 0], qs[:, 2], color="tab:red", alpha=0.25, label="10%–90%")
    ax.set(
        yscale="log",
        xlabel="dataset size N",
        ylabel="KL(q* ‖ p(z | x))  [nats]",
        title=f"KL gap vs N  (λ = {study.lam:g}, σ = {study.sigma:g})",
    )
    ax.legend()
    _save(fig, path)


def plot_coverage(cov: Coverage, path: Path, num: int) -> None:
    """Coverage of the true z by 95% intervals of q* and of the exact posterior, per N bin."""
    fig = _figure()
    ax = fig.subplots()
    edges = cov.bins
    mid = (edges[:-1] + edges[1:]) / 2
    keep = cov.count_by_bin > 0
    se = np.sqrt(LEVEL * (1 - LEVEL) / np.maximum(cov.count_by_bin[keep], 1))
    ax.fill_between(
        mid[keep],
        LEVEL - 2 * se,
        LEVEL + 2 * se,
        color="k",
        alpha=0.12,
        label="95% ± 2 binomial s.e.",
    )
    ax.axhline(LEVEL, color="k", lw=1, ls="--")
    ax.plot(
        mid[keep],
        cov.exact_by_bin[keep],
        "o-",
        color="tab:green",
        label=f"exact posterior (overall {cov.exact:.3f})",
    )
    ax.plot(
        mid[keep],
        cov.q_star_by_bin[keep],
        "s-",
        color="tab:orange",
        label=f"q* = Exponential(θ*) (overall {cov.q_star:.3f})",
    )
    ax.set(
        xlabel="dataset size N (bin centre)",
        ylabel="coverage of the true z",
        title=f"coverage of 95% equal-tailed intervals ({num:,} datasets)",
    )
    low = min(cov.q_star_by_bin[keep].min(), cov.exact_by_bin[keep].min(), LEVEL - 2 * se.max())
    ax.set_ylim(max(0.0, low - 0.02), 1.005)
    ax.legend(loc="lower right")
    _save(fig, path)


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


def write_report(
    results: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    truth: str | os.PathLike | None = None,
    lam: float | None = None,
    sigma: float | None = None,
) -> tuple[list[Path], str]:
    """Write the report's PNGs and ``summary.txt`` into ``out_dir`` (created if needed).

    Returns:
        ``(files written, summary text)``.
    """
    study = load_study(results, truth, lam=lam, sigma=sigma)
    if study.dtype == "float64":
        from jaxvi._tables.study import enable_dtype

        enable_dtype("float64")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    _figure()  # fail on a missing matplotlib before any file is written
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "q_mean_vs_post_mean.png", out / "kl_gap_vs_n.png"]
    plot_means(study, files[0])
    plot_kl(study, files[1])
    cov = None
    if study.z is not None:
        cov = coverage(study)
        files.append(out / "coverage.png")
        plot_coverage(cov, files[-1], len(study.z))
    text = summary_text(study, cov)
    files.append(out / "summary.txt")
    with atomic_path(files[-1]) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return files, text
