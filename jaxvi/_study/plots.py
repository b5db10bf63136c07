"""The pictures of ``jaxvi report``, and :func:`write_report`, which writes them with the
summary: PNG files drawn on matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxvi._results.atomic import atomic_folder, atomic_path
from jaxvi._study.report import (
    LEVEL,
    Coverage,
    Study,
    coverage,
    load_study,
    size_bins,
    summary_text,
)
from jaxvi._tables.engine import INSTALL_HINT

__all__ = ["new_figure", "plot_coverage", "plot_kl", "plot_means", "save_png", "write_report"]

_SCATTER_MAX = 20_000  # points drawn in a scatter; binned statistics use every dataset


def new_figure(size: tuple[float, float] = (9, 4)) -> Any:
    """A matplotlib ``Figure`` on the Agg canvas (no pyplot state, no display); a clear error
    when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(f"plots need matplotlib, which is not installed; {INSTALL_HINT}") from None
    # A bare Figure draws on the Agg canvas: no pyplot state, no display.
    return Figure(figsize=size, layout="constrained")


def save_png(fig: Any, path: str | os.PathLike) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _subsample(num: int) -> np.ndarray:
    if num <= _SCATTER_MAX:
        return np.arange(num)
    return np.sort(np.random.default_rng(0).choice(num, _SCATTER_MAX, replace=False))


def _binned_quantiles(n: np.ndarray, y: np.ndarray, probs=(0.1, 0.5, 0.9)):
    bins = size_bins(n, max_bins=40)
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
    fig = new_figure()
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
    save_png(fig, path)


def plot_kl(study: Study, path: Path) -> None:
    """The KL gap KL(q* ‖ p(z | x)) against the dataset size N (log scale)."""
    c = study.columns
    fig = new_figure()
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
    save_png(fig, path)


def plot_coverage(cov: Coverage, path: Path, num: int) -> None:
    """Coverage of the true z by 95% intervals of q* and of the exact posterior, per N bin."""
    fig = new_figure()
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
    for by_bin, style, color, label in (
        (cov.exact_by_bin, "o-", "tab:green", f"exact posterior (overall {cov.exact:.3f})"),
        (cov.q_star_by_bin, "s-", "tab:orange", f"q* = Exponential(θ*) (overall {cov.q_star:.3f})"),
    ):
        ax.plot(mid[keep], by_bin[keep], style, color=color, label=label)
    ax.set(
        xlabel="dataset size N (bin centre)",
        ylabel="coverage of the true z",
        title=f"coverage of 95% equal-tailed intervals ({num:,} datasets)",
    )
    low = min(cov.q_star_by_bin[keep].min(), cov.exact_by_bin[keep].min(), LEVEL - 2 * se.max())
    ax.set_ylim(max(0.0, low - 0.02), 1.005)
    ax.legend(loc="lower right")
    save_png(fig, path)


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
        from jaxvi._study.study import enable_dtype

        enable_dtype("float64")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    new_figure()  # fail on a missing matplotlib before any file is written
    if out.is_dir():  # the user's folder: each file is written whole, or not at all
        return _write_into(out, study)
    try:  # a new folder appears whole, or not at all
        out.absolute().parent.mkdir(parents=True, exist_ok=True)
        with atomic_folder(out) as tmp:
            files, text = _write_into(tmp, study)
    except OSError as err:
        raise ValueError(f"{out}: cannot make this folder ({err.strerror})") from None
    return [out / f.name for f in files], text


def _write_into(out: Path, study: Any) -> tuple[list[Path], str]:
    """The report's files in the folder ``out`` (its plots, then ``summary.txt``), and the
    summary's text."""
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
