"""The timer and report behind ``jaxvi bench`` and ``benchmarks/`` (DESIGN §4).

The work is memory-bound, so every contender is reported against a *roofline proxy*:
``jnp.sum`` over the same bytes, on the same device, timed in the same process. All
contenders are timed round-robin (one repetition of each in turn) so that noise from a shared
machine hits them alike; the median is reported. Compilation is timed apart from the runs.

Each contender is a :class:`~jaxvi._tools.contenders.Contender` record (what is timed:
:mod:`jaxvi._tools.contenders`): how to run it, what it is measured against (its roofline),
the work it does, and whether it is jaxvi or a peer (:mod:`jaxvi._tools.peers`, the optional
``bench`` extra: NumPy, PyTorch, numba, NumPyro).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from jaxvi._text import format_table
from jaxvi._tools.contenders import (
    Contender,
    compiled_thunk,
    padded_contenders,
    ragged_contenders,
)
from jaxvi._tools.workloads import (
    device_summary,
    nominal_bandwidth,
    padded_workload,
    ragged_workload,
)

__all__ = [
    "BenchReport",
    "BenchRow",
    "Contender",
    "compiled_thunk",
    "device_summary",
    "fit_timings",
    "nominal_bandwidth",
    "padded_workload",
    "parse_peers",
    "ragged_workload",
    "run_bench",
    "time_round_robin",
]


PEERS = ("numpy", "torch", "numba", "numpyro")


def parse_peers(text: str) -> tuple[str, ...]:
    """Peers from ``"auto"`` (the installed ones), ``"none"`` or a comma-separated list.

    Examples:
        >>> parse_peers("numpy,torch"), parse_peers("none")
        (('numpy', 'torch'), ())
    """
    import importlib.util

    if text == "auto":
        return tuple(p for p in PEERS if p == "numpy" or importlib.util.find_spec(p) is not None)
    return () if text == "none" else tuple(p.strip() for p in text.split(",") if p.strip())


@dataclass(frozen=True)
class BenchRow:
    """One contender: what it did and how fast.

    ``seconds`` is the median over repetitions; ``datasets_per_s`` may be scaled from a subset
    (``note`` says so); ``roofline`` is the roofline time for the same bytes divided by
    ``seconds``; ``fraction_of_copy`` the host-to-device copy's time for the same bytes divided
    by ``seconds`` (NaN for work on device-resident data).
    """

    name: str
    seconds: float
    compile_seconds: float
    num_datasets: int
    nbytes: int
    datasets_per_s: float
    gb_per_s: float
    roofline: float
    max_rel_err_theta: float = float("nan")
    note: str = ""
    kind: str = "jaxvi"
    headline: bool = False
    fraction_of_copy: float = float("nan")


@dataclass
class BenchReport:
    """The comparison printed by ``jaxvi bench``."""

    device: str
    device_kind: str
    nominal_gbps: float | None
    jax_version: str
    rows: list[BenchRow] = field(default_factory=list)
    platform: str = "cpu"
    device_count: int = 1
    settings: dict[str, Any] = field(default_factory=dict)

    def row(self, name: str) -> BenchRow:
        """The row called ``name``."""
        return next(r for r in self.rows if r.name == name)

    def format(self) -> str:
        """The report as an aligned text table."""
        lines = [f"device: {self.device} (jax {self.jax_version})"]
        if self.nominal_gbps is not None:
            lines.append(f"nominal bandwidth: {self.nominal_gbps:.0f} GB/s")
        elif jax.devices()[0].platform != "cpu":
            lines.append("nominal bandwidth: unknown for this device")
        head = ("contender", "median s", "compile s", "datasets/s", "GB/s", "roofline", "θ err")
        body = [
            (
                r.name,
                f"{r.seconds:.4f}",
                f"{r.compile_seconds:.2f}",
                f"{r.datasets_per_s:.3g}",
                f"{r.gb_per_s:.2f}",
                f"{r.roofline:.2f}",
                "" if np.isnan(r.max_rel_err_theta) else f"{r.max_rel_err_theta:.1e}",
            )
            for r in self.rows
        ]
        lines += format_table(body, head=head)
        if self.nominal_gbps is not None:
            best = max(r.gb_per_s for r in self.rows)
            lines.append(f"best GB/s as a fraction of nominal: {best / self.nominal_gbps:.2f}")
        lines += [f"  {r.name}: {r.note}" for r in self.rows if r.note]
        lines += self.headlines()
        return "\n".join(lines)

    def headlines(self) -> list[str]:
        """The ratios the targets are set for: each headline kernel's roofline fraction, and
        the headline ``fit``'s datasets/s against each peer's."""
        out = []
        for r in self.rows:
            if r.headline and r.kind == "jaxvi":
                out.append(f"{r.name}: {r.roofline:.2f} of the jnp.sum roofline")
            if r.headline and np.isfinite(r.fraction_of_copy):
                out.append(f"{r.name}: {r.fraction_of_copy:.2f} of the host-to-device copy rate")
        fits = [r for r in self.rows if r.headline and r.name.startswith("ragged fit")]
        for f in fits:
            for p in (r for r in self.rows if r.kind == "peer"):
                ratio = f.datasets_per_s / p.datasets_per_s
                out.append(f"{f.name} vs {p.name}: {ratio:.3g}x the datasets/s")
        return out


def time_round_robin(fns: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    """Times each ``fn`` ``reps`` times, one of each in turn (noise hits all alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def fit_timings(data: Any, *, exact: bool, reps: int, **options: Any) -> tuple[float, list[float]]:
    """Wall times of :func:`jaxvi.fit` on ``data``: the first call (which compiles every block
    shape) and ``reps`` more."""
    from jaxvi._fit.fit import fit

    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        fit(data, exact=exact, **options)
        times.append(time.perf_counter() - t0)
    return times[0], times[1:]


def _max_rel_err(theta: np.ndarray, ref: np.ndarray) -> float:
    ok = np.isfinite(ref) & (ref > 0)
    return float(np.max(np.abs(theta[ok] - ref[ok]) / ref[ok])) if ok.any() else float("nan")


def run_bench(
    num_datasets: int = 1_000_000,
    *,
    padded_rows: int = 2_000_000,
    padded_cols: int = 64,
    peers: Sequence[str] = PEERS,
    reps: int = 5,
    svi_datasets: int = 64,
    svi_steps: int = 2000,
    svi_particles: int = 16,
    seed: int = 0,
) -> BenchReport:
    """Run the whole comparison on the default device and return the table.

    Args:
        num_datasets: ragged datasets for the end-to-end ``fit`` and its peers.
        padded_rows: rows of the device-resident float32 padded block (0 skips it).
        padded_cols: its width.
        peers: any of ``"numpy"``, ``"torch"``, ``"numba"``, ``"numpyro"``.
        reps: repetitions per contender (median reported).
        svi_datasets: datasets NumPyro fits (its datasets/s is measured on these).
        svi_steps: SVI steps per dataset.
        svi_particles: Trace_ELBO particles. With the defaults the median error of θ is
            below 1% (measured: 0.7% median, 1.6% at the 90th percentile); with one particle
            it stays near 2-3% however many steps are taken.
        seed: seed of the workloads.

    Returns:
        :class:`BenchReport`.
    """
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise ValueError(f"bench: unknown peers {sorted(unknown)}; choose from {list(PEERS)}")
    dev = jax.devices()[0]
    report = BenchReport(
        device_summary(dev),
        str(dev.device_kind),
        nominal_bandwidth(dev.device_kind),
        jax.__version__,
        platform=dev.platform,
        device_count=jax.device_count(),
        settings={
            "num_datasets": num_datasets,
            "padded_rows": padded_rows,
            "padded_cols": padded_cols,
            "peers": list(peers),
            "reps": reps,
            "seed": seed,
        },
    )
    contenders: list[Contender] = []
    if padded_rows:
        contenders += padded_contenders(padded_workload(padded_rows, padded_cols, seed=seed))
    values, offsets = ragged_workload(num_datasets, seed=seed)
    svi = {"datasets": svi_datasets, "steps": svi_steps, "particles": svi_particles, "seed": seed}
    contenders += ragged_contenders(values, offsets, peers, svi)

    # A first call of each (fit compiles its block shapes there), then round-robin repetitions.
    first: dict[str, float] = {}
    for c in contenders:
        t0 = time.perf_counter()
        c.run()
        first[c.name] = time.perf_counter() - t0
    results: dict[str, Any] = {}

    def keep(c: Contender) -> Callable[[], None]:
        return lambda: results.__setitem__(c.name, c.run())

    times = time_round_robin({c.name: keep(c) for c in contenders}, reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    by_name = {c.name: c for c in contenders}
    for c in contenders:
        compile_s = c.compile_seconds
        if compile_s is None:  # compiled inside its first call
            compile_s = max(first[c.name] - med[c.name], 0.0)
        roof = by_name[c.roofline]
        note, err = c.note, float("nan")
        theta = results.get(c.name)
        if c.reference is not None and isinstance(theta, np.ndarray):
            ref = c.reference[: theta.shape[0]]
            err = _max_rel_err(theta, ref)
            if c.name.startswith("NumPyro"):
                rel = np.abs(theta - ref) / ref
                note += f"; θ error median {np.median(rel):.2%}, 90th percentile "
                note += f"{np.quantile(rel, 0.9):.2%}"
        report.rows.append(
            BenchRow(
                name=c.name,
                seconds=med[c.name],
                compile_seconds=compile_s,
                num_datasets=c.num_datasets,
                nbytes=c.nbytes,
                datasets_per_s=c.num_datasets / med[c.name],
                gb_per_s=c.nbytes / med[c.name] / 1e9,
                roofline=med[roof.name] * (c.nbytes / roof.nbytes) / med[c.name],
                max_rel_err_theta=err,
                note=note,
                kind=c.kind,
                headline=c.headline,
                fraction_of_copy=med[c.copy] / med[c.name] if c.copy else float("nan"),
            )
        )
    return report
