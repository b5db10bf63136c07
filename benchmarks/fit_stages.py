"""Time each stage of :func:`jaxvi.fit` by wrapping its internals (for the profiling scripts).

Used by ``profile_fit.py`` and ``measure_fit_memory.py``. Transfers and kernels block inside
their timer, so each stage's time is its own; that serialises ``fit``'s overlap of host and
device work, and the stages add up to more than a plain call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax

from jaxvi._fit import blocks, device_stats, devices, fit, plan

# (label, owner, attribute, block inside the timer). The native engine's statistics are one
# stage; the XLA engine's are bucketing, host blocks, transfers and kernels; the device
# engine's are its kernel (which waits for its window's transfer) inside its whole, the rest of
# which is host bookkeeping.
STAGES: tuple[tuple[str, Any, str, bool], ...] = (
    ("validation + host layout", fit, "as_flat_or_stats", False),
    ("validation: NaN/inf, from the sums", fit, "check_finite_values", False),
    ("native statistics (host values, every core)", fit, "native_stats", False),
    ("bucketing", plan.ChunkPlan, "bucket", False),
    ("host: gather raw windows", blocks, "gather_block", False),
    ("host: build padded shifted blocks", blocks, "build_block", False),
    ("transfer host -> device", devices.Devices, "put", True),
    ("transfer device -> host", devices.Devices, "fetch", False),
    ("kernel: row sums", blocks, "_row_sums", True),
    ("kernel: masked row sums of windows", blocks, "_window_sums", True),
    ("kernel: solve", fit, "_solve_stats", True),
    ("(all of the XLA engine's reduction)", fit, "reduce_blocks", False),
    ("device engine: transfer + kernel (gather, reduce, set)", device_stats, "_chunk_stats", True),
    ("(all of the device engine's statistics)", fit, "device_stats", False),
)


def _timed(add: Callable[[float], None], fn: Callable, block: bool) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        if block:
            out = jax.block_until_ready(out)
        add(time.perf_counter() - t0)
        return out

    return wrapper


@contextmanager
def timed_stages(times: dict[str, float], keys: dict[str, str] | None = None) -> Iterator[None]:
    """While open, add each stage's seconds to ``times[key]``; restore ``fit`` on exit.

    Args:
        times: accumulates seconds per key (missing keys start at 0).
        keys: stage label → key in ``times``; only these stages are timed. Every stage under
            its own label when ``None``.
    """
    keys = {label: label for label, *_ in STAGES} if keys is None else keys
    saved = []
    for label, owner, attr, block in STAGES:
        if label not in keys:
            continue
        key = keys[label]
        times.setdefault(key, 0.0)
        original = getattr(owner, attr)
        saved.append((owner, attr, original))

        def add(dt: float, key: str = key) -> None:
            times[key] += dt

        setattr(owner, attr, _timed(add, original, block))
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
