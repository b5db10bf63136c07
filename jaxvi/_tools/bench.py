"""The workload, peers and timer behind ``jaxvi bench`` and ``benchmarks/`` (DESIGN §4).

The work is memory-bound, so every contender is reported against a *roofline proxy*:
``jnp.sum`` over the same bytes, on the same device, timed in the same process. All
contenders are timed round-robin (one repetition of each in turn) so that noise from a shared
machine hits them alike; the median is reported. Compilation is timed apart from the runs.

Peers (optional, the ``bench`` extra): NumPy ``add.reduceat`` closed form in float64, PyTorch
``segment_reduce`` with autograd for the gradient, and NumPyro SVI vmapped over datasets.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._model.solve import solve
from jaxvi._stats.data import Ragged
from jaxvi._stats.padded import suff_stats

__all__ = [
    "NOMINAL_BANDWIDTH_GBPS",
    "BenchReport",
    "BenchRow",
    "closed_form_numpy",
    "compiled_thunk",
    "device_summary",
    "fit_timings",
    "nominal_bandwidth",
    "numpy_reduceat",
    "numpyro_svi",
    "padded_workload",
    "parse_peers",
    "ragged_workload",
    "run_bench",
    "time_round_robin",
    "torch_segment_reduce",
]

# Nominal peak memory bandwidth (GB/s) by a substring of jax's ``device_kind``; vendors'
# data sheets. Checked in order, so the more specific names come first.
NOMINAL_BANDWIDTH_GBPS: tuple[tuple[str, float], ...] = (
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("A10G", 600.0),
    ("L40S", 864.0),
    ("L4", 300.0),
    ("T4", 320.0),
    ("V100", 900.0),
    ("RTX 4090", 1008.0),
    ("RTX 3090", 936.0),
    ("TPU v6 lite", 1640.0),
    ("TPU v5 lite", 819.0),
    ("TPU v5p", 2765.0),
    ("TPU v5", 2765.0),
    ("TPU v4", 1200.0),
    ("TPU v3", 900.0),
    ("TPU v2", 700.0),
)

PEERS = ("numpy", "torch", "numpyro")


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


def nominal_bandwidth(device_kind: str) -> float | None:
    """Nominal memory bandwidth in GB/s of a GPU or TPU named ``device_kind``, else ``None``.

    Examples:
        >>> nominal_bandwidth("NVIDIA A100-SXM4-40GB")
        1555.0
        >>> nominal_bandwidth("cpu") is None
        True
    """
    for key, gbps in NOMINAL_BANDWIDTH_GBPS:
        if key.lower() in device_kind.lower():
            return gbps
    return None


def device_summary(device: jax.Device | None = None) -> str:
    """A one-line description of ``device`` (the default device when ``None``).

    On CPU this names the processor model and the number of cores the process may use.
    """
    device = jax.devices()[0] if device is None else device
    kind = str(device.device_kind)
    if device.platform != "cpu":
        return f"{device.platform.upper()} {kind}"
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU {model}, {cores} cores, {len(jax.devices())} jax device(s)"


def ragged_workload(
    num_datasets: int, *, seed: int = 0, lam: float = 1.0, sigma: float = 1.0, scale: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Host NumPy datasets of mixed lengths with a long tail, drawn from the model.

    Lengths are ``floor(scale·P)`` with P Pareto(α = 1.5) (mean ``3·scale``, so 24 points by
    default), capped at 100,000; a few datasets are empty.

    Returns:
        ``values`` ``(M,)`` float32 and ``offsets`` ``(D + 1,)`` int64.

    Examples:
        >>> values, offsets = ragged_workload(1000)
        >>> offsets.shape, values.dtype.name, int(offsets[-1]) == values.shape[0]
        ((1001,), 'float32', True)
    """
    rng = np.random.default_rng(seed)
    lengths = np.minimum(np.floor(scale * (rng.pareto(1.5, num_datasets) + 1)), 100_000)
    lengths[rng.random(num_datasets) < 0.01] = 0
    lengths = lengths.astype(np.int64)
    offsets = np.zeros(num_datasets + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    z = rng.exponential(1 / lam, num_datasets).astype(np.float32)
    values = rng.standard_normal(offsets[-1], np.float32)
    values *= np.float32(sigma)
    values += np.repeat(z, lengths)
    return values, offsets


def padded_workload(rows: int, cols: int = 64, *, seed: int = 0) -> jax.Array:
    """Device-resident float32 ``(rows, cols)`` block of full datasets drawn from the model."""
    rng = np.random.default_rng(seed)
    z = rng.exponential(1.0, (rows, 1)).astype(np.float32)
    x = z + rng.standard_normal((rows, cols), np.float32)
    return jax.block_until_ready(jax.device_put(x))


def closed_form_numpy(
    n: np.ndarray, s: np.ndarray, s2: np.ndarray, lam: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """θ*, ELBO(θ*) and dELBO/dθ at θ* from unshifted sums, in float64 (the NumPy peer)."""
    v = sigma * sigma
    a = n / v
    bb = s / v - lam
    root = np.sqrt(bb * bb + 8 * a)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(bb > 0, 4 * a / np.where(bb > 0, bb + root, 1), (root - bb) / 2)
    c = -s2 / (2 * v) - n / 2 * np.log(2 * np.pi * v) + np.log(lam) + 1
    r = 1 / theta
    elbo = bb * r - a * r * r - np.log(theta) + c
    grad = r * r * (-bb + 2 * a * r) - r
    return theta, elbo, grad


def numpy_reduceat(
    values: np.ndarray, offsets: np.ndarray, lam: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NumPy peer: ``np.add.reduceat`` sums in float64, then the closed form.

    Examples:
        >>> th, _, _ = numpy_reduceat(np.array([1.0, 2.0, 3.0]), np.array([0, 3, 3]))
        >>> th.round(4).tolist()
        [1.0, 1.0]
    """
    lengths = np.diff(offsets)
    n = lengths.astype(np.float64)
    s, s2 = np.zeros_like(n), np.zeros_like(n)
    # reduceat gives x[start] for an empty segment, so reduce over the non-empty ones only:
    # each then ends where the next non-empty one starts.
    full = lengths > 0
    if full.any():
        starts = offsets[:-1][full]
        # Accumulate in float64 without a float64 copy of the values (one fewer big array:
        # the peer's time then depends less on how fast the OS hands out fresh pages).
        s[full] = np.add.reduceat(values, starts, dtype=np.float64)
        s2[full] = np.add.reduceat(np.square(values, dtype=np.float64), starts)
    return closed_form_numpy(n, s, s2, lam, sigma)


def torch_segment_reduce(
    values: np.ndarray, offsets: np.ndarray, lam: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PyTorch peer: ``torch.segment_reduce`` sums, θ* closed form, gradient by autograd."""
    import torch

    x = torch.from_numpy(values)
    lengths = torch.from_numpy(np.diff(offsets))
    s = torch.segment_reduce(x, "sum", lengths=lengths, unsafe=True)
    s2 = torch.segment_reduce(x * x, "sum", lengths=lengths, unsafe=True)
    n = lengths.to(x.dtype)
    v = sigma * sigma
    a = n / v
    bb = s / v - lam
    root = torch.sqrt(bb * bb + 8 * a)
    theta = torch.where(bb > 0, 4 * a / torch.where(bb > 0, bb + root, 1), (root - bb) / 2)
    theta = theta.detach().requires_grad_(True)
    c = -s2 / (2 * v) - n / 2 * float(np.log(2 * np.pi * v)) + float(np.log(lam)) + 1
    elbo = bb / theta - a / theta**2 - torch.log(theta) + c
    elbo.sum().backward()
    return theta.detach().numpy(), elbo.detach().numpy(), theta.grad.numpy()


def numpyro_svi(
    x: np.ndarray,
    lengths: np.ndarray,
    steps: int,
    *,
    lam: float = 1.0,
    sigma: float = 1.0,
    seed: int = 0,
    final_step_ratio: float = 1e-3,
    num_particles: int = 1,
) -> Callable[[], np.ndarray]:
    """The NumPyro peer, compiled: SVI (Trace_ELBO, an Exponential guide, Adam with a decaying
    step) for each dataset, vmapped over the padded ``x`` ``(D, L)``.

    Returns:
        A function that runs the fit and returns the fitted rates θ ``(D,)``.
    """
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO

    def model(xs, mask):
        z = numpyro.sample("z", dist.Exponential(lam))
        with numpyro.plate("obs", xs.shape[0]), numpyro.handlers.mask(mask=mask):
            numpyro.sample("x", dist.Normal(z, sigma), obs=xs)

    def guide(xs, mask):
        rate = numpyro.param("rate", 1.0, constraint=dist.constraints.positive)
        numpyro.sample("z", dist.Exponential(rate))

    # A decaying step (0.1 down to 0.1·final_step_ratio): Trace_ELBO's one-sample gradient is
    # noisy, and Adam then random-walks with steps of the step size; at a final step of 1e-3
    # the median error of θ stays near 2% however many steps are taken.
    schedule = lambda i: 0.1 * final_step_ratio ** (i / steps)
    svi = SVI(model, guide, numpyro.optim.Adam(schedule), Trace_ELBO(num_particles=num_particles))

    def one(key, xs, mask):
        state = svi.init(key, xs, mask)
        state = jax.lax.fori_loop(0, steps, lambda _, s: svi.update(s, xs, mask)[0], state)
        return svi.get_params(state)["rate"]

    keys = jax.random.split(jax.random.key(seed), x.shape[0])
    mask = np.arange(x.shape[1]) < lengths[:, None]
    args = (keys, jnp.asarray(x, jnp.float32), jnp.asarray(mask))
    compiled = jax.jit(jax.vmap(one)).lower(*args).compile()
    return lambda: np.asarray(compiled(*args))


@dataclass(frozen=True)
class BenchRow:
    """One contender: what it did and how fast.

    ``seconds`` is the median over repetitions; ``datasets_per_s`` may be scaled from a subset
    (``note`` says so); ``roofline`` is the roofline time divided by ``seconds``.
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


@dataclass
class BenchReport:
    """The comparison printed by ``jaxvi bench``."""

    device: str
    device_kind: str
    nominal_gbps: float | None
    jax_version: str
    rows: list[BenchRow] = field(default_factory=list)

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
        table = [head]
        for r in self.rows:
            table.append(
                (
                    r.name,
                    f"{r.seconds:.4f}",
                    f"{r.compile_seconds:.2f}",
                    f"{r.datasets_per_s:.3g}",
                    f"{r.gb_per_s:.2f}",
                    f"{r.roofline:.2f}",
                    "" if np.isnan(r.max_rel_err_theta) else f"{r.max_rel_err_theta:.1e}",
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        for row in table:
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells))
        if self.nominal_gbps is not None:
            best = max(r.gb_per_s for r in self.rows)
            lines.append(f"best GB/s as a fraction of nominal: {best / self.nominal_gbps:.2f}")
        lines += [f"  {r.name}: {r.note}" for r in self.rows if r.note]
        lines += self.headlines()
        return "\n".join(lines)

    def headlines(self) -> list[str]:
        """The ratios issue 4 sets targets for, for the rows present."""
        names = {r.name: r for r in self.rows}
        out = []
        for name in _PADDED_HEADLINES:
            if name in names:
                out.append(f"{name}: {names[name].roofline:.2f} of the jnp.sum roofline")
        fit_row = names.get("ragged fit")
        for peer in ("NumPy reduceat (float64)", "PyTorch segment_reduce", "NumPyro SVI (vmapped)"):
            if fit_row is not None and peer in names:
                ratio = fit_row.datasets_per_s / names[peer].datasets_per_s
                out.append(f"ragged fit vs {peer}: {ratio:.3g}x the datasets/s")
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


def compiled_thunk(fn: Callable, *args: Any) -> tuple[Callable[[], Any], float]:
    """``fn`` compiled for ``args`` and warmed up: a blocking thunk, and the compile time."""
    t0 = time.perf_counter()
    exe = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(exe(*args))
    return lambda: jax.block_until_ready(exe(*args)), compile_s


# The padded rows whose roofline fraction the report states: issue 4's kernel is
# solve(suff_stats(x, lengths)); the full-row form (lengths=None) is the fast path beside it.
_PADDED_HEADLINES = (
    "padded solve, lengths",
    "padded solve + exact, lengths",
    "padded solve, full rows",
    "padded solve + exact, full rows",
)


def padded_kernels(x: jax.Array) -> dict[str, tuple[Callable[[], Any], float]]:
    """Compiled, warmed-up thunks of the padded kernels and their roofline, on ``x`` ``(D, L)``.

    ``lengths`` are all ``L``: every byte is useful, so the GB/s compare with the roofline's.
    """
    lengths = jax.device_put(np.full(x.shape[0], x.shape[1], np.int32))
    out = {"jnp.sum (roofline, padded)": compiled_thunk(jnp.sum, x)}
    for exact in (False, True):
        tag = " + exact" if exact else ""
        out[f"padded solve{tag}, lengths"] = compiled_thunk(
            lambda x, n, exact=exact: solve(suff_stats(x, n), exact=exact), x, lengths
        )
        out[f"padded solve{tag}, full rows"] = compiled_thunk(
            lambda x, exact=exact: solve(suff_stats(x), exact=exact), x
        )
    return out


def fit_timings(data: Any, *, exact: bool, reps: int) -> tuple[float, list[float]]:
    """Wall times of :func:`jaxvi.fit` on ``data``: the first call (which compiles every block
    shape) and ``reps`` more."""
    from jaxvi._fit.fit import fit

    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        fit(data, exact=exact)
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
        peers: any of ``"numpy"``, ``"torch"``, ``"numpyro"``.
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
    from jaxvi._fit.fit import fit

    unknown = set(peers) - set(PEERS)
    if unknown:
        raise ValueError(f"bench: unknown peers {sorted(unknown)}; choose from {list(PEERS)}")
    dev = jax.devices()[0]
    report = BenchReport(
        device_summary(dev),
        str(dev.device_kind),
        nominal_bandwidth(dev.device_kind),
        jax.__version__,
    )
    thunks: dict[str, Callable[[], Any]] = {}
    meta: dict[str, tuple[float, int, int, str]] = {}  # compile s, datasets, bytes, note

    if padded_rows:
        x = padded_workload(padded_rows, padded_cols, seed=seed)
        for name, (thunk, compile_s) in padded_kernels(x).items():
            thunks[name] = thunk
            meta[name] = (compile_s, padded_rows, x.nbytes, "device-resident float32")

    values, offsets = ragged_workload(num_datasets, seed=seed)
    nbytes = values.nbytes
    dev_values = jax.device_put(values)
    thunks["jnp.sum (roofline, ragged)"], c = compiled_thunk(jnp.sum, dev_values)
    meta["jnp.sum (roofline, ragged)"] = (c, num_datasets, nbytes, "device-resident values")
    data = Ragged(values, offsets)
    ref = numpy_reduceat(values, offsets)[0]
    results: dict[str, np.ndarray] = {}
    for exact in (False, True):
        name = "ragged fit" + (" + exact" if exact else "")
        first = fit_timings(data, exact=exact, reps=0)[0]  # compiles every bucket shape

        def run(exact=exact, name=name):
            results[name] = fit(data, exact=exact).theta

        thunks[name] = run
        # Negative: the first call's time, from which the median run is subtracted below.
        meta[name] = (-first, num_datasets, nbytes, "from host NumPy, validation on")
    if "numpy" in peers:
        thunks["NumPy reduceat (float64)"] = lambda: results.__setitem__(
            "NumPy reduceat (float64)", numpy_reduceat(values, offsets)[0]
        )
        meta["NumPy reduceat (float64)"] = (0.0, num_datasets, nbytes, "")
    if "torch" in peers:
        thunks["PyTorch segment_reduce"] = lambda: results.__setitem__(
            "PyTorch segment_reduce", torch_segment_reduce(values, offsets)[0]
        )
        torch_segment_reduce(values[:100], offsets[offsets <= 100])  # warm-up
        meta["PyTorch segment_reduce"] = (0.0, num_datasets, nbytes, "float32, autograd")
    if "numpyro" in peers:
        lengths = np.diff(offsets)[:svi_datasets]
        width = int(max(lengths.max(initial=1), 1))
        xs = np.zeros((svi_datasets, width), np.float32)
        mask = np.arange(width) < lengths[:, None]
        xs[mask] = values[: int(lengths.sum())]
        t0 = time.perf_counter()
        svi = numpyro_svi(xs, lengths, svi_steps, seed=seed, num_particles=svi_particles)
        compile_s = time.perf_counter() - t0
        svi_ref = ref[:svi_datasets]
        thunks["NumPyro SVI (vmapped)"] = lambda: results.__setitem__(
            "NumPyro SVI (vmapped)", svi()
        )
        meta["NumPyro SVI (vmapped)"] = (
            compile_s,
            svi_datasets,
            int(lengths.sum()) * 4,
            f"{svi_steps} steps of Trace_ELBO({svi_particles} particles) on the first "
            f"{svi_datasets} datasets; datasets/s from that subset",
        )

    times = time_round_robin(thunks, reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in thunks:
        compile_s, count, nb, note = meta[name]
        if compile_s < 0:  # fit compiles inside its first call
            compile_s = max(-compile_s - med[name], 0.0)
        roof_name = (
            "jnp.sum (roofline, padded)" if "padded" in name else "jnp.sum (roofline, ragged)"
        )
        err = float("nan")
        if name in results:
            r = ref if name != "NumPyro SVI (vmapped)" else svi_ref
            err = _max_rel_err(results[name], r)
            if name == "NumPyro SVI (vmapped)":
                rel = np.abs(results[name] - r) / r
                note += f"; θ error median {np.median(rel):.2%}, 90th percentile "
                note += f"{np.quantile(rel, 0.9):.2%}"
        report.rows.append(
            BenchRow(
                name=name,
                seconds=med[name],
                compile_seconds=compile_s,
                num_datasets=count,
                nbytes=nb,
                datasets_per_s=count / med[name],
                gb_per_s=nb / med[name] / 1e9,
                roofline=med[roof_name] * (nb / meta[roof_name][2]) / med[name],
                max_rel_err_theta=err,
                note=note,
            )
        )
    return report
