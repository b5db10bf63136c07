"""``jaxvi fit`` on files against what a user would run instead, as whole processes.

For each input (10⁶ datasets of 1–64 points by default: sorted Parquet, the same rows
shuffled, the sorted rows as CSV, and shuffled CSV with string ids) and each contender, one
process is started and its wall time and peak resident memory (``os.wait4``) are recorded.
Contenders run round-robin, ``--reps`` times each; the first round warms the page cache (and
jaxvi's compilation cache), so the table reports the median of the later rounds: the user's
second run.

Contenders, each writing one row per dataset, sorted by id, to Parquet:

* ``jaxvi``: ``jaxvi fit INPUT -o OUT.parquet -q`` (statistics in DuckDB, the kernel in XLA;
  11 columns: B, θ*, ELBO, gradient, log evidence, KL gap, q's mean, posterior mean and sd);
* ``duckdb``: one DuckDB SQL query: n, mean and Σ(x − x̄)² (``avg``, ``var_pop``), then B, θ*,
  ELBO and gradient in SQL, ``COPY … TO`` Parquet (6 columns; SQL has no log Φ);
* ``polars``: the same in a lazy polars query, streamed to Parquet;
* ``kernel``: no input at all: the process only imports JAX and loads jaxvi's table kernel
  from JAX's persistent compilation cache in the command's cache folder, as ``jaxvi fit`` does
  while DuckDB reads. It is the fixed cost of running a compiled XLA kernel, which the SQL
  peer does not pay.

Besides wall time and peak RSS, each row gives the CPU seconds (user + system) of the process.
A process that does the query's work and the kernel's cannot take less wall time than either
alone, nor less than their CPU seconds together over the cores: the script prints that floor.
It prints a floor of memory too. A process that loads the kernel while the query runs holds
both at once, and one whose statistics leave DuckDB as Arrow batches (as issue 11 asks) has
imported pyarrow: its peak RSS is at least the query's, plus what a process that has imported
DuckDB and pyarrow and loaded the kernel holds beyond one that has only imported DuckDB (both
measured, once per round). Both floors are drawn on the plot. They are floors for a process
that runs the query as the peer does, one group-by over the whole input: jaxvi reads Parquet
sorted by id a range of ids at a time, whose queries hold less, and can peak below.

Run::

    python benchmarks/files.py --datasets 1000000 --reps 3 --plot files.png

``--plot`` draws each contender's wall time and peak RSS as a multiple of the DuckDB query's,
per input, against issue 11's 1.5× (``benchmarks/files-1e6.png`` is the run of 2026-12-07,
01:04 UTC).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# The peers as scripts of their own: argv = [input, output, format]. λ = σ = 1.
DUCKDB_PEER = r"""
import sys, duckdb
src, out, fmt = sys.argv[1:4]
reader = {"parquet": "read_parquet", "csv": "read_csv"}[fmt]
con = duckdb.connect()
con.execute(f'''
COPY (
  WITH s AS (
    SELECT dataset_id, count(x) AS n, avg(x) AS m, var_pop(x) * count(x) AS ss
    FROM {reader}($src) GROUP BY dataset_id),
  c AS (SELECT dataset_id, n, n * m - 1.0 AS b, n * 1.0 AS a, ss + n * m * m AS s2 FROM s),
  t AS (SELECT *, CASE WHEN b > 0 THEN 4 * a / (b + sqrt(b * b + 8 * a))
                       ELSE (sqrt(b * b + 8 * a) - b) / 2 END AS theta FROM c)
  SELECT dataset_id, n, b, theta,
         b / theta - a / (theta * theta) - ln(theta) - s2 / 2 - n / 2 * ln(2 * pi()) + 1
           AS elbo,
         -b / (theta * theta) + 2 * a / (theta * theta * theta) - 1 / theta AS grad
  FROM t ORDER BY dataset_id
) TO '{out}' (FORMAT parquet)''', {"src": src})
"""

POLARS_PEER = r"""
import sys, math, polars as pl
src, out, fmt = sys.argv[1:4]
scan = pl.scan_parquet(src) if fmt == "parquet" else pl.scan_csv(src)
s = scan.group_by("dataset_id").agg(
    n=pl.col("x").count(), m=pl.col("x").cast(pl.Float64).mean(),
    ss=pl.col("x").cast(pl.Float64).var(ddof=0) * pl.col("x").count())
b = pl.col("n") * pl.col("m") - 1.0
a = pl.col("n").cast(pl.Float64)
root = (b * b + 8 * a).sqrt()
theta = pl.when(b > 0).then(4 * a / (b + root)).otherwise((root - b) / 2)
s = s.with_columns(b=b, a=a, s2=pl.col("ss") + pl.col("n") * pl.col("m") ** 2)
s = s.with_columns(theta=theta)
th = pl.col("theta")
res = s.select(
    "dataset_id", "n", "b", "theta",
    elbo=pl.col("b") / th - pl.col("a") / th**2 - th.log() - pl.col("s2") / 2
    - pl.col("n") / 2 * math.log(2 * math.pi) + 1,
    grad=-pl.col("b") / th**2 + 2 * pl.col("a") / th**3 - 1 / th,
).sort("dataset_id")
res.sink_parquet(out)
"""

INPUTS = ("sorted_parquet", "shuffled_parquet", "sorted_csv", "shuffled_csv")
# The fixed cost of the kernel in ``jaxvi fit``: import JAX and load the kernel from the
# command's cache, by the function the command runs beside the query.
KERNEL_ONLY = r"""
import argparse
from jaxvi._cli.kernel_cache import warm_kernel
args = argparse.Namespace(batch_size=None, lam_column=None, sigma_column=None, theta=None)
warm_kernel(args, "float32")
"""

CONTENDERS = ("jaxvi", "duckdb", "polars", "kernel")
# Measured with the kernel, once per round, for the floor of memory: what the query's process
# holds before it reads (DuckDB imported), and a process with the kernel loaded and DuckDB and
# pyarrow imported but nothing read; the difference is what ``jaxvi fit`` holds beside the query.
BASELINES = {"imported": "import duckdb", "loaded": "import duckdb, pyarrow\n" + KERNEL_ONLY}


def make_inputs(
    folder: Path, datasets: int, sizes: tuple[int, int], names=INPUTS, seed: int = 0
) -> dict:
    """The input files ``names`` (made once per size and kept in ``folder``; the same seed
    gives the same rows, so files made by different runs agree)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from jaxvi._results.atomic import atomic_path  # an interrupted run leaves no partial input

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "sorted_parquet": folder / "sorted.parquet",
        "shuffled_parquet": folder / "shuffled.parquet",
        "sorted_csv": folder / "sorted.csv",
        "shuffled_csv": folder / "shuffled.csv",
    }
    missing = [name for name in names if not paths[name].exists()]
    if not missing:
        return paths
    rng = np.random.default_rng(seed)
    n = rng.integers(sizes[0], sizes[1] + 1, datasets)
    ids = np.repeat(np.arange(datasets, dtype=np.int64), n)
    x = (np.repeat(rng.exponential(size=datasets), n) + rng.normal(size=n.sum())).astype(np.float32)
    ordered = pa.table({"dataset_id": ids, "x": x})
    if "sorted_parquet" in missing:
        with atomic_path(paths["sorted_parquet"]) as tmp:
            pq.write_table(ordered, tmp)
    if "sorted_csv" in missing:
        with atomic_path(paths["sorted_csv"]) as tmp:
            pcsv.write_csv(ordered, str(tmp))
    perm = rng.permutation(ids.size)
    shuffled = ordered.take(perm)
    del ordered
    if "shuffled_parquet" in missing:
        with atomic_path(paths["shuffled_parquet"]) as tmp:
            pq.write_table(shuffled, tmp)
    if "shuffled_csv" in missing:  # string ids "ds-<id>", made in Arrow (NumPy's take 48 B each)
        text = pc.binary_join_element_wise("ds-", shuffled["dataset_id"].cast(pa.string()), "")
        with atomic_path(paths["shuffled_csv"]) as tmp:
            pcsv.write_csv(shuffled.set_column(0, "dataset_id", text), str(tmp))
    return paths


def command(contender: str, src: Path, out: Path, jaxvi_args: tuple[str, ...] = ()) -> list[str]:
    fmt = "csv" if src.suffix == ".csv" else "parquet"
    if contender == "jaxvi":
        return [sys.executable, "-m", "jaxvi", "fit", str(src), "-o", str(out), "-q", *jaxvi_args]
    if contender == "kernel":
        return [sys.executable, "-c", KERNEL_ONLY]
    if contender in BASELINES:
        return [sys.executable, "-c", BASELINES[contender]]
    script = {"duckdb": DUCKDB_PEER, "polars": POLARS_PEER}[contender]
    return [sys.executable, "-c", script, str(src), str(out), fmt]


# Started from a bare interpreter (python -S, ~6 MB): a child's peak RSS counts the memory of
# the process it was forked from, which here would be this script's arrays.
_LAUNCH = (
    "import os, sys\n"
    "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_once(cmd: list[str], env: dict) -> tuple[float, float, float]:
    """Wall seconds, peak RSS in MB and CPU seconds of one process."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCH, *cmd], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-2000:]}")
    rss, cpu = proc.stdout.split()[-2:]
    return wall, int(rss) / 1024, float(cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=int, default=1_000_000)
    p.add_argument("--sizes", default="1:64", help="inclusive LOW:HIGH points per dataset")
    p.add_argument("--reps", type=int, default=3, help="rounds; the first only warms caches")
    p.add_argument("--inputs", default=",".join(INPUTS))
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument(
        "--dir",
        default=None,
        help="the folder under which the inputs are kept, in DIR/DATASETS-LOW-HIGH (default: "
        "$TMPDIR/jaxvi-files-bench)",
    )
    p.add_argument(
        "--jaxvi-args",
        default="",
        help="more options for jaxvi fit, e.g. '--memory-limit 300MB' (bounded memory)",
    )
    p.add_argument("--json", default=None, help="also write the measurements here")
    p.add_argument(
        "--plot", default=None, help="also draw wall time and peak RSS against the query (PNG)"
    )
    args = p.parse_args()
    low, high = (int(v) for v in args.sizes.split(":"))
    base = Path(args.dir or Path(os.environ.get("TMPDIR", "/tmp")) / "jaxvi-files-bench")
    folder = base / f"{args.datasets}-{low}-{high}"
    inputs = args.inputs.split(",")
    contenders = [c for c in args.contenders.split(",") if c != "polars" or _has("polars")]
    if args.plot and "duckdb" not in contenders:
        p.error("--plot draws ratios to the DuckDB query: keep duckdb in --contenders")
    paths = make_inputs(folder, args.datasets, (low, high), inputs)
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(folder / "xla-cache"))
    env.pop("XLA_FLAGS", None)
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for _ in range(max(args.reps, 1)):
        for name in inputs:
            for who in contenders:
                if who == "kernel":  # reads no input: once per round
                    continue
                out = folder / f"out-{who}.parquet"
                times.setdefault((name, who), []).append(
                    run_once(command(who, paths[name], out, tuple(args.jaxvi_args.split())), env)
                )
        if "kernel" in contenders:
            for who in ("kernel", *BASELINES):
                times.setdefault(("-", who), []).append(run_once(command(who, Path(), Path()), env))
    later = slice(1, None) if args.reps > 1 else slice(None)
    rows = {
        key: tuple(statistics.median(run[k] for run in runs[later]) for k in range(3))
        for key, runs in times.items()
    }
    sizes = {name: paths[name].stat().st_size / 2**20 for name in inputs}
    cores = os.cpu_count() or 1
    print(
        f"# {args.datasets:,} datasets of {low}-{high} points; {cores} cores "
        f"({platform.processor() or platform.machine()}); median of {max(args.reps - 1, 1)} "
        "warm runs; whole processes"
    )
    print(
        "| input | size MB | contender | wall s | peak RSS MB | CPU s "
        "| jaxvi / contender (wall, RSS) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in inputs:
        mine = rows.get((name, "jaxvi"))
        for who in contenders:
            if who == "kernel":
                continue
            wall, rss, cpu = rows[(name, who)]
            ratio = (
                ""
                if mine is None or who == "jaxvi"
                else f"{mine[0] / wall:.2f}×, {mine[1] / rss:.2f}×"
            )
            print(
                f"| {name} | {sizes[name]:.0f} | {who} | {wall:.2f} | {rss:.0f} | {cpu:.2f} "
                f"| {ratio} |"
            )
    if ("-", "kernel") in rows:
        wall, rss, cpu = rows[("-", "kernel")]
        print(
            f"\nThe kernel alone (loaded from the command's cache): {wall:.2f} s, "
            f"{rss:.0f} MB, {cpu:.2f} CPU s."
        )
        imported, loaded = rows[("-", "imported")][1], rows[("-", "loaded")][1]
        print(
            f"DuckDB imported: {imported:.0f} MB; that, pyarrow imported and the kernel loaded: "
            f"{loaded:.0f} MB."
        )
        for name in inputs:
            if (name, "duckdb") in rows:
                peer = rows[(name, "duckdb")]
                floor = wall_floor(rows, name, cores)
                print(
                    f"{name}: a process doing the query's work and the kernel's takes at least "
                    f"{floor:.2f} s = {floor / peer[0]:.2f}× the query's wall time (the longer "
                    f"of the two alone, and their CPU seconds over {cores} cores)"
                )
                held = memory_floor(rows, name)
                print(
                    f"{name}: one holding this query's memory and the kernel's at once peaks at "
                    f"{held:.0f} MB or more = {held / peer[1]:.2f}× the query's peak RSS "
                    f"({peer[1]:.0f} + {loaded:.0f} - {imported:.0f} MB)"
                )
    if args.plot:
        title = f"{args.datasets:,} datasets of {low}-{high} points, {cores} cores"
        plot(rows, inputs, [c for c in contenders if c != "kernel"], title, Path(args.plot), cores)
    if args.json:
        record = [
            {"input": n, "contender": w, "wall_s": v[0], "peak_rss_mb": v[1], "cpu_s": v[2],
             "runs": times[(n, w)]}
            for (n, w), v in rows.items()
        ]  # fmt: skip
        Path(args.json).write_text(json.dumps(record, indent=1))


def wall_floor(rows: dict, name: str, cores: int) -> float:
    """The least wall time (s) of a process that does the DuckDB query's work on input
    ``name`` and the kernel's: the longer of the two alone, and their CPU seconds together
    over ``cores``."""
    peer, kernel = rows[(name, "duckdb")], rows[("-", "kernel")]
    return max(peer[0], kernel[0], (peer[2] + kernel[2]) / cores)


def memory_floor(rows: dict, name: str) -> float:
    """The least peak RSS (MB) of a process that holds the DuckDB query's memory on input
    ``name`` with the kernel loaded and pyarrow imported: the query's peak, plus what the
    kernel and pyarrow add to a process that has imported DuckDB (``rows`` as :func:`main`
    makes)."""
    added = rows[("-", "loaded")][1] - rows[("-", "imported")][1]
    return rows[(name, "duckdb")][1] + added


def plot(
    rows: dict, inputs: list[str], contenders: list[str], title: str, path: Path, cores: int
) -> None:
    """Each contender's wall time and peak RSS as a multiple of the DuckDB query's, per input,
    with issue 11's 1.5× target and, when the kernel was measured, the floors of a process
    that does the query's and the kernel's work at once: where the table's ratios are, at a
    glance."""
    from jaxvi._study.plots import new_figure, save_png

    fig = new_figure((10, 4.4))
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / max(len(contenders), 1)
    at = np.arange(len(inputs))
    for ax, k, what in zip(axes, (0, 1), ("wall time", "peak RSS"), strict=True):
        for j, who in enumerate(contenders):
            ratios = [rows[(n, who)][k] / rows[(n, "duckdb")][k] for n in inputs]
            bars = ax.bar(at + (j - (len(contenders) - 1) / 2) * width, ratios, width, label=who)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.axhline(1.5, color="k", ls="--", lw=1, label="target 1.5×")
        if ("-", "kernel") in rows and "jaxvi" in contenders:
            floors = [
                wall_floor(rows, n, cores) if k == 0 else memory_floor(rows, n) for n in inputs
            ]
            levels = [f / rows[(n, "duckdb")][k] for f, n in zip(floors, inputs, strict=True)]
            label = "floor: the query's work and the kernel's in one process"
            mine = at + (contenders.index("jaxvi") - (len(contenders) - 1) / 2) * width
            ax.hlines(levels, mine - 0.7 * width, mine + 0.7 * width, colors="k", lw=2, zorder=3,
                      label=label)  # fmt: skip
        ax.set_xticks(at, [n.replace("_", "\n") for n in inputs], fontsize=8)
        ax.set_title(f"{what} / the DuckDB query's")
    axes[0].set_ylabel("× the DuckDB query")
    fig.legend(
        *axes[1].get_legend_handles_labels(), loc="outside lower center", ncols=6, fontsize=8
    )
    fig.suptitle(title)
    save_png(fig, path)
    print(f"wrote {path}")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
