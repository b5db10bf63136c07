"""``jaxvi.dask.fit_table`` on ``LocalCluster``s against one process and Dask's own group-by.

Input: ``--datasets`` datasets (5·10⁶ by default) of 1–64 points, about 32.5 rows each, their
rows shuffled over ``--parts`` Parquet files (so that nearly every dataset spans many files).
Contenders, side by side in one run, each producing one row of results per dataset:

* ``fit_table``: ``jaxvi.fit_table`` in a process of its own (DuckDB, every core), the
  result as an Arrow table in that process;
* ``jaxvi.dask (W)``: ``jaxvi.dask.fit_table`` on a ``LocalCluster`` of W worker processes of
  one thread, persisted on the workers (``persist`` + ``wait``);
* ``dask groupby (W)``: what a Dask user would write: ``groupby(id).x.agg(count, mean, var)``,
  then B, θ* and the ELBO in pandas, persisted the same way (no exact side, and the
  variance is Dask's ``Σx² − (Σx)²/n``).

For each Dask run the script samples every worker's RSS every 0.2 s (peak, against the
worker's ``memory_limit``) and checks that no worker was restarted. It prints rows/s per
worker against the one-process DuckDB path, and the bytes per input row that the shuffle
moves (the partials' Arrow size over the input's rows).

Run::

    python benchmarks/dask_scaling.py --datasets 5000000 --json dask-5e6.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ONE_PROCESS = r"""
import sys, time, resource
t0 = time.perf_counter()
import jaxvi
res = jaxvi.fit_table(sys.argv[1])
print(res.num_rows, time.perf_counter() - t0,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def make_input(folder: Path, datasets: int, parts: int, seed: int = 5) -> int:
    """``folder/part-K.parquet``: the rows of ``datasets`` datasets, shuffled over ``parts``
    files; the number of rows (written once, reused while the files are there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = folder / "_rows"
    if done.exists():
        return int(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 65, datasets)
    means = rng.exponential(1.0, datasets)
    ids = np.repeat(np.arange(datasets, dtype=np.int64), sizes)
    rng.shuffle(ids)
    x = means[ids] + rng.standard_normal(ids.size)
    for k, rows in enumerate(np.array_split(np.arange(ids.size), parts)):
        table = pa.table({"dataset_id": ids[rows], "x": x[rows]})
        pq.write_table(table, folder / f"part-{k:03d}.parquet", row_group_size=1 << 20)
    done.write_text(str(ids.size))
    return int(ids.size)


def one_process(folder: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", ONE_PROCESS, str(folder)], capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    rows, seconds, rss = proc.stdout.strip().splitlines()[-1].split()
    return {"datasets": int(rows), "seconds": float(seconds), "peak_rss": int(rss)}


class WorkerMemory:
    """Every worker's peak RSS, sampled every 0.2 s from a thread."""

    def __init__(self, client):
        self.client, self.peak = client, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(0.2):
            try:
                info = self.client.scheduler_info(n_workers=-1)["workers"]
            except Exception:
                continue
            for address, w in info.items():
                rss = w.get("metrics", {}).get("memory", 0)
                self.peak[address] = max(self.peak.get(address, 0), rss)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def dask_peer(folder: Path):
    """What a Dask user writes: grouped count, mean and var, then the closed form."""
    import dask.dataframe as dd

    agg = dd.read_parquet(str(folder)).groupby("dataset_id")["x"].agg(["count", "mean", "var"])

    def closed_form(frame):
        n = frame["count"].to_numpy(np.float64)
        mean = frame["mean"].to_numpy()
        s2 = np.nan_to_num(frame["var"].to_numpy()) * (n - 1) + n * mean**2
        b = n * mean - 1.0
        root = np.sqrt(b * b + 8 * n)
        theta = np.where(b > 0, 4 * n / (b + root), (root - b) / 2)
        elbo = b / theta - n / theta**2 - np.log(theta) - s2 / 2 - n / 2 * np.log(2 * np.pi) + 1
        return frame.assign(b=b, theta=theta, elbo=elbo)

    return agg.map_partitions(closed_form)


def warm_up() -> None:
    """A small fit on every worker: JAX imported and the kernel compiled (the fixed cost)."""
    import dask.dataframe as dd
    import pandas as pd

    import jaxvi.dask

    frame = pd.DataFrame({"dataset_id": np.arange(64) % 16, "x": np.linspace(0, 1, 64)})
    source = dd.from_pandas(frame, npartitions=8)
    jaxvi.dask.fit_table(source, npartitions=8).compute()


def run_on_cluster(name: str, workers: int, build, warm=None) -> dict:
    from distributed import Client, LocalCluster, wait

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        t0 = time.perf_counter()
        if warm is not None:  # each worker imports JAX and compiles the kernel: not timed
            warm()
        warm_seconds = time.perf_counter() - t0
        pids = client.run(os.getpid)
        limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
        with WorkerMemory(client) as memory:
            t0 = time.perf_counter()
            result = build().persist()  # client.persist(df) kept 1 of 4 parts of the peer
            wait(result)
            seconds = time.perf_counter() - t0
        datasets = int(result.map_partitions(len).sum().compute())
        restarted = client.run(os.getpid) != pids
    return {
        "contender": name,
        "workers": workers,
        "seconds": seconds,
        "datasets": datasets,
        "peak_worker_rss": max(memory.peak.values(), default=0),
        "memory_limit": limit,
        "restarted": restarted,
        "warm_up_seconds": warm_seconds,
    }


def shuffle_bytes_per_row(folder: Path, rows: int) -> float:
    """The partials' Arrow bytes over the input's rows: what the shuffle moves per row."""
    import pyarrow.parquet as pq

    from jaxvi._dask.partials import partial_meta, partition_partials

    first = sorted(folder.glob("part-*.parquet"))[0]
    frame = pq.read_table(first).to_pandas(types_mapper=None)
    meta = partial_meta("int64", None, None)
    partials = partition_partials(
        frame, id="dataset_id", x="x", lam=None, sigma=None, label="", empty=meta
    )
    import pyarrow as pa

    return pa.Table.from_pandas(partials, preserve_index=False).nbytes / len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=5_000_000)
    parser.add_argument("--parts", type=int, default=32)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/jaxvi-dask-bench"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import jaxvi.dask

    folder = args.dir / f"shuffled-{args.datasets}"
    t0 = time.perf_counter()
    rows = make_input(folder, args.datasets, args.parts)
    print(
        f"input: {args.datasets:,} datasets, {rows:,} rows in {args.parts} shuffled Parquet "
        f"files ({time.perf_counter() - t0:.0f} s to make or find)",
        flush=True,
    )
    runs = []
    base = one_process(folder)
    runs.append({"contender": "fit_table", "workers": 1, **base})
    print(
        f"fit_table (one process): {base['seconds']:.1f} s, peak RSS "
        f"{base['peak_rss'] / 2**20:.0f} MB",
        flush=True,
    )
    for workers in (1, 2):
        for name, build, warm in (
            (f"jaxvi.dask ({workers})", lambda: jaxvi.dask.fit_table(str(folder)), warm_up),
            (f"dask groupby ({workers})", lambda: dask_peer(folder), None),
        ):
            run = run_on_cluster(name, workers, build, warm)
            runs.append(run)
            print(
                f"{name}: {run['seconds']:.1f} s, {run['datasets']:,} datasets, peak worker "
                f"RSS {run['peak_worker_rss'] / 2**20:.0f} MB of "
                f"{run['memory_limit'] / 2**20:.0f} MB, restarted: {run['restarted']}",
                flush=True,
            )
    per_row = shuffle_bytes_per_row(folder, rows)
    print()
    print(
        f"{'contender':<20} {'wall s':>8} {'rows/s/worker':>14} {'x fit_table':>12} "
        f"{'x dask groupby':>15}"
    )
    peers = {r["workers"]: r for r in runs if r["contender"].startswith("dask groupby")}
    for r in runs:
        rate = rows / r["seconds"] / r["workers"]
        peer = peers.get(r["workers"]) if r["contender"].startswith("jaxvi.dask") else None
        vs_peer = f"{r['seconds'] / peer['seconds']:.2f}" if peer else ""
        print(
            f"{r['contender']:<20} {r['seconds']:>8.1f} {rate:>14,.0f} "
            f"{r['seconds'] / base['seconds']:>12.2f} {vs_peer:>15}"
        )
    print(f"\nshuffle: {per_row:.1f} bytes of partials per input row (the input: 16)")
    record = {
        "rows": rows,
        "datasets": args.datasets,
        "parts": args.parts,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "shuffle_bytes_per_row": per_row,
        "runs": runs,
        "peak_rss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
