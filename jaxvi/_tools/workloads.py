"""The workloads ``jaxvi bench`` times, and what it says of the device they run on."""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = [
    "NOMINAL_BANDWIDTH_GBPS",
    "device_summary",
    "nominal_bandwidth",
    "padded_workload",
    "ragged_workload",
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
