"""How fast ``jaxvi fit`` stops on SIGINT and SIGTERM, and whether it stops cleanly, under load.

Each run starts ``jaxvi fit`` (on a ``LocalCluster`` with ``--scheduler``) on ``--datasets``
datasets of 1–16 points, their rows shuffled over ``--files`` Parquet files. A random moment
(``--min-delay`` to ``--max-delay`` s) after the command is ready, it sends SIGINT or SIGTERM,
in turn. "Ready" means the dashboard's line with ``--scheduler``; without it, the start. (In
the first 0.1 s, while Python starts and imports the command, a signal acts as it does on any
Python program: SIGTERM kills it, SIGINT prints a traceback; no output exists yet.) A run is
good when the command exits with 128 + the signal, prints ``jaxvi fit: interrupted`` as its
last line (after the dashboard's), and leaves nothing in the output's folder. A run that
ended before the signal is counted apart.

``--busy N`` runs N busy Python loops beside it, standing in for the other work on a CI
machine (CI runs two test processes on two cores). Signals lost in a garbage-collector
callback (JAX's, or the Dask scheduler's), and workers restarted while the cluster closes, show
up here as slow or failed stops (see ``jaxvi/_results/signals.py``).

Run::

    python benchmarks/signal_stops.py --runs 30 --busy 2 --scheduler local:2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_input(folder: Path, datasets: int, files: int, seed: int = 24) -> None:
    """``datasets`` datasets of 1–16 rows, shuffled over ``files`` Parquet files."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(datasets), rng.integers(1, 17, datasets))
    x = rng.exponential(1.0, datasets)[ids] + rng.standard_normal(ids.size)
    order = rng.permutation(ids.size)
    table = pa.table({"dataset_id": ids[order], "x": x[order]})
    for k, part in enumerate(np.array_split(np.arange(ids.size), files)):
        pq.write_table(table.take(part), folder / f"part-{k}.parquet")


def one_run(data: Path, out: Path, sig: int, delay: float, scheduler: str | None) -> dict:
    """Start ``jaxvi fit``, send ``sig`` ``delay`` s after it is ready; what happened."""
    cmd = [sys.executable, "-m", "jaxvi", "fit", str(data), "-o", str(out / "results")]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    else:
        cmd[-1] += ".parquet"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline() if scheduler else ""
        time.sleep(delay)
        before = proc.poll() is not None
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        seconds = time.monotonic() - sent
    finally:
        proc.kill()
        _, err = proc.communicate()
    lines = (first + err).replace("\r", "\n").splitlines()
    last = [line for line in lines if line.strip()][-1:]
    good = (
        proc.returncode == 128 + sig
        and last == ["jaxvi fit: interrupted"]
        and "Traceback" not in err
        and not any(out.iterdir())
    )
    return {
        "signal": signal.Signals(sig).name,
        "delay": round(delay, 3),
        "seconds": round(seconds, 3),
        "code": proc.returncode,
        "ended_before": before,
        "good": good and not before,
        "stderr_tail": err[-400:] if not good else "",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", type=int, default=100_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--min-delay", type=float, default=0.3)
    p.add_argument("--max-delay", type=float, default=1.5)
    p.add_argument("--busy", type=int, default=0, help="busy Python loops beside the runs")
    p.add_argument("--scheduler", default=None, help="e.g. local:2 (default: one process)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    root = Path(tempfile.mkdtemp(prefix="jaxvi-signal-stops-"))
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    runs = []
    try:
        data = root / "data"
        data.mkdir()
        write_input(data, args.datasets, args.files)
        for k in range(args.runs):
            out = root / f"out-{k}"
            out.mkdir()
            sig = (signal.SIGINT, signal.SIGTERM)[k % 2]
            run = one_run(
                data, out, sig, rng.uniform(args.min_delay, args.max_delay), args.scheduler
            )
            runs.append(run)
            print(" ".join(f"{key}={value}" for key, value in run.items() if value != ""))
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
        shutil.rmtree(root, ignore_errors=True)

    stopped = [r for r in runs if not r["ended_before"]]
    times = np.array([r["seconds"] for r in stopped]) if stopped else np.zeros(1)
    print(f"\n{platform.node()}, {os.cpu_count()} cores, {args.busy} busy loops, "
          f"scheduler {args.scheduler or 'none'}, {args.datasets:,} datasets")  # fmt: skip
    print("| runs | ended before the signal | good stops | median | p90 | max |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(runs)} | {len(runs) - len(stopped)} | {sum(r['good'] for r in runs)} "
        f"| {np.median(times):.2f} s | {np.quantile(times, 0.9):.2f} s | {times.max():.2f} s |"
    )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "runs": runs}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
