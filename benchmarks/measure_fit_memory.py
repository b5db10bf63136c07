"""Measure ``jaxvi.fit`` on many ragged datasets: compilations, peak memory, time per stage.

Run from the repository root::

    /work/venv/bin/python benchmarks/measure_fit_memory.py --num-datasets 1000000

Lengths follow a long tail (Pareto, 5% empty, capped at ``--max-len``). The script reports:

* the end-to-end ``fit`` time, first call (compiling) and second call (cached);
* the number of XLA compilations of each call;
* the peak resident memory during the second call above the resident memory before it
  (``VmHWM`` reset through ``/proc/self/clear_refs``; Linux only), against the input size;
* a breakdown by stage from a third, instrumented call in which every stage is made
  synchronous: validation, bucketing, host block building, host-to-device transfer, device
  compute (row sums and solve) and fetching results. The instrumented total exceeds the real
  one, since the real pipeline overlaps the host with the devices.

This is a measurement, not a benchmark suite: ``benchmarks/`` holds the pytest-benchmark ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-datasets", type=int, default=1_000_000)
    p.add_argument("--max-len", type=int, default=5000)
    p.add_argument("--chunk-size", type=int, default=1 << 22)
    p.add_argument("--devices", type=int, default=1, help="CPU devices (jax_num_cpu_devices)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args()


def status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def main() -> None:
    args = parse()
    import jax

    jax.config.update("jax_num_cpu_devices", args.devices)
    import numpy as np

    from jaxvi import Ragged, fit
    from jaxvi._fit.validate import as_flat_or_stats

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: (
            compiles.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None
        )
    )

    rng = np.random.default_rng(args.seed)
    n = args.num_datasets
    lengths = np.minimum(rng.pareto(1.3, n) * 25, args.max_len).astype(np.int64)
    lengths[rng.random(n) < 0.05] = 0
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.normal(0.0, 1.0, offsets[-1]).astype(np.float32)
    values += np.repeat(rng.exponential(1.0, n).astype(np.float32), lengths)
    data = Ragged(values, offsets)
    opts = dict(chunk_size=args.chunk_size)
    report = {
        "num_datasets": n,
        "num_values": int(offsets[-1]),
        "input_MB": round((values.nbytes + offsets.nbytes) / 2**20, 1),
        "max_len": int(lengths.max()),
        "mean_len": round(float(lengths.mean()), 1),
        "devices": jax.device_count(),
        "chunk_size": args.chunk_size,
    }

    for call in ("first", "second"):
        compiles.clear()
        Path("/proc/self/clear_refs").write_text("5")
        rss_before = status("VmRSS:")
        t = time.perf_counter()
        fit(data, **opts)
        report[f"{call}_call_s"] = round(time.perf_counter() - t, 3)
        report[f"{call}_call_compilations"] = len(compiles)
        report[f"{call}_call_compile_s"] = round(sum(compiles), 3)
        report[f"{call}_call_peak_rss_above_start_MB"] = round(
            (status("VmHWM:") - rss_before) / 2**20, 1
        )
    report["datasets_per_s"] = round(n / report["second_call_s"])

    # Instrumented call: every stage synchronous, timed on its own.
    from fit_stages import timed_stages

    stages: dict[str, float] = {}
    keys = {
        "validation + host layout": "validation",
        "validation: NaN/inf, from the sums": "validation",
        "native statistics (host values, every core)": "native_statistics",
        "bucketing": "bucketing",
        "host: gather raw windows": "block_build",
        "host: build padded shifted blocks": "block_build",
        "transfer host -> device": "transfer",
        "kernel: row sums": "compute",
        "kernel: masked row sums of windows": "compute",
        "kernel: solve": "compute",
        "transfer device -> host": "fetch",
    }
    t = time.perf_counter()
    as_flat_or_stats(data, validate=False)
    unchecked = time.perf_counter() - t
    t = time.perf_counter()
    with timed_stages(stages, keys):
        fit(data, **opts)
    stages["validation"] -= unchecked  # the layout itself is not validation
    report["instrumented_total_s"] = round(time.perf_counter() - t, 3)
    report["stages_s"] = {k: round(v, 3) for k, v in stages.items()}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
