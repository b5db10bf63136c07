"""The ``jaxvi`` command, run for real in subprocesses on files the tests make.

Each subprocess pays for a JAX import (a few seconds), so the runs are shared where they can be:
one simulate → fit → report study serves several tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from helpers import assert_b_close

from jaxvi import Padded, fit
from jaxvi._cli.options import positive_int, size_pair
from jaxvi._results import kernel
from jaxvi._study import study as _study
from jaxvi.cli import build_parser, main

JAXVI = [sys.executable, "-m", "jaxvi"]
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module", autouse=True)
def _shared_compilation_cache(tmp_path_factory):
    """The subprocesses compile the same kernels: JAX's persistent cache lets them share."""
    ENV.update(
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )


RESULT_COLUMNS = list(kernel.RESULT_COLUMNS)
LAM, SIGMA, SIZES, SEED, NUM = 1.5, 0.8, (1, 30), 7, 600


def run(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*JAXVI, *map(str, args)],
        capture_output=True,
        text=True,
        env=env or ENV,
        cwd=cwd,
        timeout=300,
    )


def terminal_lines(text: str) -> list[str]:
    """What a terminal shows of ``text``: a progress bar redrawn with carriage returns and
    cleared leaves only what was written over it."""
    return [line.split("\r")[-1] for line in text.rstrip("\n").split("\n")]


def ok(*args, **kw) -> subprocess.CompletedProcess:
    proc = run(*args, **kw)
    assert proc.returncode == 0, proc.stderr
    return proc


def read(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    table = pcsv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
    return {k: v.to_numpy() for k, v in zip(table.column_names, table.columns, strict=True)}


def _closed_form(groups: list[np.ndarray], lam: float, sigma: float):
    """θ*, B and the ELBO's constant from the derivation, in float64 NumPy (moderate B)."""
    v = sigma * sigma
    n = np.array([len(g) for g in groups], float)
    s = np.array([g.sum() for g in groups])
    s2 = np.array([(g * g).sum() for g in groups])
    a = n / v
    b = s / v - lam
    theta = 4 * a / (b + np.sqrt(b * b + 8 * a))
    c = -s2 / (2 * v) - n / 2 * np.log(2 * np.pi * v) + np.log(lam) + 1
    return b, theta, a, c


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One simulation study, the way a user runs it: simulate, fit, report."""
    d = tmp_path_factory.mktemp("cli_study")
    common = ["--lam", LAM, "--sigma", SIGMA]
    sim = ok(
        "simulate", "-n", NUM, "--sizes", "1:30", "--seed", SEED, *common, "-o", d / "d.parquet"
    )
    fitted = ok("fit", d / "d.parquet", "-o", d / "r.parquet", *common)
    rep = ok("report", d / "r.parquet", "--truth", d / "d.truth.parquet", "-o", d / "report")
    return d, sim, fitted, rep


def test_simulate_writes_long_table_and_truth(study):
    d, sim, _, _ = study
    data = pq.read_table(d / "d.parquet")
    truth = pq.read_table(d / "d.truth.parquet")
    assert data.column_names == ["dataset_id", "x"]
    assert truth.column_names == ["dataset_id", "n", "z"]
    assert data.schema.field("dataset_id").type == pa.int64()
    ids = data.column("dataset_id").to_numpy()
    n = truth.column("n").to_numpy()
    assert truth.column("dataset_id").to_numpy().tolist() == list(range(NUM))
    assert np.array_equal(np.bincount(ids, minlength=NUM), n)
    assert n.min() >= SIZES[0] and n.max() <= SIZES[1] and len(np.unique(n)) > 20
    assert (truth.column("z").to_numpy() > 0).all()
    meta = data.schema.metadata
    assert meta[b"lam"] == b"1.5" and meta[b"seed"] == b"7" and meta[b"sizes"] == b"(1, 30)"
    assert f"wrote {NUM} datasets" in sim.stdout


def test_simulate_same_seed_same_files_and_matches_in_process(study, tmp_path):
    d, _, _, _ = study
    # A second, independent run (in this process) with the same seed writes the same bytes.
    _study.simulate_to_file(
        tmp_path / "d.parquet", NUM, lam=LAM, sigma=SIGMA, sizes=SIZES, seed=SEED
    )
    for name in ("d.parquet", "d.truth.parquet"):
        assert (tmp_path / name).read_bytes() == (d / name).read_bytes()
    # The documented chunking: chunk k is simulate(fold_in(key(seed), k), ...).
    ((_, x, lengths, z),) = list(
        _study.simulation_chunks(NUM, lam=LAM, sigma=SIGMA, sizes=SIZES, seed=SEED)
    )
    valid = np.arange(x.shape[1]) < lengths[:, None]
    np.testing.assert_array_equal(pq.read_table(d / "d.parquet")["x"].to_numpy(), x[valid])
    np.testing.assert_array_equal(pq.read_table(d / "d.truth.parquet")["z"].to_numpy(), z)


def test_fit_round_trip_reproduces_in_process_fit(study):
    d, _, fitted, _ = study
    res = pq.read_table(d / "r.parquet")
    assert res.column_names == RESULT_COLUMNS
    meta = res.schema.metadata
    assert meta[b"lam"] == b"1.5" and meta[b"sigma"] == b"0.8" and meta[b"dtype"] == b"float32"
    assert meta[b"jaxvi_version"] and meta[b"input"] == str(d / "d.parquet").encode()
    ((_, x, lengths, _),) = list(
        _study.simulation_chunks(NUM, lam=LAM, sigma=SIGMA, sizes=SIZES, seed=SEED)
    )
    sol = fit(Padded(x, lengths), LAM, SIGMA)
    cols = {k: v.to_numpy() for k, v in zip(res.column_names, res.columns, strict=True)}
    assert cols["dataset_id"].tolist() == list(range(NUM))
    assert cols["n"].tolist() == lengths.tolist()
    assert_b_close(cols["b"], sol.b, LAM, 2e-5)
    for name in ("theta", "elbo", "log_evidence"):
        np.testing.assert_allclose(cols[name], getattr(sol, name), rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(cols["kl_gap"], sol.kl_gap, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(cols["q_mean"], 1 / sol.theta, rtol=2e-5)
    assert (cols["post_sd"] > 0).all() and (cols["post_mean"] > 0).all()
    assert f"fitted {NUM} datasets" in fitted.stdout


def test_report_writes_plots_and_summary(study):
    d, _, _, rep = study
    out = d / "report"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["coverage.png", "kl_gap_vs_n.png", "q_mean_vs_post_mean.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:4] == b"\x89PNG"
    summary = (out / "summary.txt").read_text()
    assert re.search(rf"^datasets +{NUM}$", summary, re.M)
    line = next(s for s in summary.splitlines() if s.strip().startswith("exact posterior"))
    exact = float(line.split()[2])
    assert abs(exact - 0.95) < 4 * math.sqrt(0.95 * 0.05 / NUM)
    assert summary in rep.stdout


def test_csv_and_npz_files_give_the_same_results(study, tmp_path):
    d, _, _, _ = study
    ok("simulate", "-n", NUM, "--sizes", "1:30", "--seed", SEED, "--lam", LAM, "--sigma",
       SIGMA, "-q", "-o", tmp_path / "d.csv")  # fmt: skip
    # Plain CSV: one header line, then rows; the metadata in a JSON sidecar.
    assert (tmp_path / "d.truth.csv").read_text().splitlines()[0] == '"dataset_id","n","z"'
    assert json.loads((tmp_path / "d.truth.csv.json").read_text())["seed"] == str(SEED)
    ok("fit", tmp_path / "d.csv", "-o", tmp_path / "r.npz", "--lam", LAM, "--sigma", SIGMA)
    got, want = read(tmp_path / "r.npz"), read(d / "r.parquet")
    assert list(got) == [*RESULT_COLUMNS, "jaxvi_version", "input", "lam", "sigma", "dtype"]
    assert str(got["lam"]) == "1.5"
    # The CSV holds float32 values as decimal text, which DuckDB reads as the nearest double.
    assert_b_close(got["b"], want["b"], LAM, 1e-5)
    assert got["dataset_id"].tolist() == want["dataset_id"].tolist()
    for name in set(RESULT_COLUMNS) - {"dataset_id", "b", "grad"}:  # grad at θ* is round-off
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    """String ids, rows in random order, and the same datasets as a statistics table."""
    d = tmp_path_factory.mktemp("shuffled")
    rng = np.random.default_rng(3)
    groups = [rng.normal(rng.exponential(), 1.0, rng.integers(1, 12)) for _ in range(40)]
    ids = np.repeat([f"s-{i}" for i in range(40)], [len(g) for g in groups])
    vals = np.concatenate(groups)
    perm = rng.permutation(len(vals))
    first = sorted(set(ids))  # results come sorted by id
    groups = [groups[int(i[2:])] for i in first]
    with open(d / "long.csv", "w") as fh:
        fh.write("sample,value\n")
        fh.writelines(f"{i},{float(v)!r}\n" for i, v in zip(ids[perm], vals[perm], strict=True))
    with open(d / "stats.csv", "w") as fh:
        fh.write("dataset_id,n,sum_x,sum_x2\n")
        fh.writelines(
            f"{i},{len(g)},{float(g.sum())!r},{float((g * g).sum())!r}\n"
            for i, g in zip(first, groups, strict=True)
        )
    return d, first, groups


def test_string_ids_in_any_order_and_stats_tables(shuffled):
    d, first, groups = shuffled
    ok("fit", d / "long.csv", "-o", d / "r_long.csv", "--id-column", "sample",
       "--value-column", "value", "--lam", "2", "-q")  # fmt: skip
    ok("fit", d / "stats.csv", "-o", d / "r_stats.parquet", "--lam", "2", "-q")
    long, stats = read(d / "r_long.csv"), read(d / "r_stats.parquet")
    assert long["dataset_id"].tolist() == first
    assert stats["dataset_id"].tolist() == first
    b, theta, _, _ = _closed_form(groups, 2.0, 1.0)
    for got in (long, stats):
        assert got["n"].tolist() == [len(g) for g in groups]
        np.testing.assert_allclose(got["b"], b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["theta"], theta, rtol=1e-5)


def test_float64_and_fixed_theta(shuffled):
    d, first, groups = shuffled
    ok("fit", d / "long.csv", "-o", d / "r64.npz", "--id-column", "sample", "--value-column",
       "value", "--dtype", "float64", "--theta", "0.5", "--sigma", "1.5", "-q")  # fmt: skip
    got = read(d / "r64.npz")
    assert str(got["dtype"]) == "float64" and str(got["fixed_theta"]) == "0.5"
    assert got["theta"].dtype == np.float64
    assert got["dataset_id"].tolist() == first
    b, _, a, c = _closed_form(groups, 1.0, 1.5)
    th = 0.5
    np.testing.assert_array_equal(got["theta"], np.full(len(groups), th))
    np.testing.assert_allclose(got["b"], b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["elbo"], b / th - a / th**2 - np.log(th) + c, rtol=1e-11)
    np.testing.assert_allclose(got["grad"], -b / th**2 + 2 * a / th**3 - 1 / th, rtol=1e-11)


def _sorted_long_parquet(path: Path, num: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 20, num)
    ids = np.repeat(np.arange(num, dtype=np.int64) * 2, sizes)
    x = rng.normal(np.repeat(rng.exponential(size=num), sizes), 1.0).astype(np.float32)
    pq.write_table(pa.table({"dataset_id": ids, "x": x}), path, row_group_size=1000)


def test_batches_and_row_order_change_nothing_but_rounding(tmp_path):
    _sorted_long_parquet(tmp_path / "d.parquet", 2000, 5)
    table = pq.read_table(tmp_path / "d.parquet")
    perm = np.random.default_rng(0).permutation(table.num_rows)
    pq.write_table(table.take(perm), tmp_path / "shuffled.parquet")
    small = ok("fit", tmp_path / "d.parquet", "-o", tmp_path / "s.parquet", "--batch-size", 64)
    whole = ok("fit", tmp_path / "shuffled.parquet", "-o", tmp_path / "m.parquet")
    assert "fitted 2,000 datasets (32 batches, lam = 1.0)" in small.stdout
    assert "fitted 2,000 datasets (1 batch, lam = 1.0)" in whole.stdout
    s, m = read(tmp_path / "s.parquet"), read(tmp_path / "m.parquet")
    assert s["dataset_id"].tolist() == m["dataset_id"].tolist() == list(range(0, 4000, 2))
    assert np.array_equal(s["n"], m["n"])
    # DuckDB adds a dataset's values in another order when the rows come in another order.
    for name in set(RESULT_COLUMNS[2:]) - {"grad"}:
        atol = 1e-5 * np.abs(m[name]).max()
        np.testing.assert_allclose(s[name], m[name], rtol=1e-4, atol=atol, err_msg=name)


def _corrupt(path: Path) -> None:
    """A Parquet file cut short, like an interrupted copy."""
    _sorted_long_parquet(path, 50, 1)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _stats_with_duplicate(path: Path) -> None:
    path.write_text("dataset_id,n,sum_x,sum_x2\n4,1,0,0\n4,2,0,0\n")


BAD_INPUTS = {
    "missing_file": (None, "in.csv", [], "in.csv: no such file"),
    "glob_matches_nothing": (None, "in*.parquet", [], "in*.parquet: no files match"),
    "value_of_wrong_type": (
        "dataset_id,x\n1,2024-01-05\n",
        "in.csv",
        [],
        "column 'x' holds DATE values; need numbers",
    ),
    "duplicate_ids_in_statistics": (
        _stats_with_duplicate,
        "in.csv",
        [],
        "dataset 4 appears more than once in a statistics table",
    ),
    "lam_column_varies": (
        "dataset_id,x,l\n1,2.0,1\n1,3.0,2\n",
        "in.csv",
        ["--lam-column", "l"],
        "dataset 1 has more than one l (1.0 and 2.0)",
    ),
    "corrupt_parquet": (_corrupt, "in.parquet", [], "not a readable Parquet file"),
    "missing_column": ("dataset_id,y\n1,2.0\n", "in.csv", [], "missing column 'x'"),
    "non_numeric": ("dataset_id,x\n1,2.0\n9,two\n", "in.csv", [], "dataset 9 has a non-numeric x"),
    "nan": ("dataset_id,x\na,2.0\nb,nan\n", "in.csv", [], "dataset 'b' has a non-finite x = nan"),
    "nan_in_a_later_batch": (
        "dataset_id,x\na,2.0\nb,1.0\nc,inf\n",
        "in.csv",
        ["--batch-size", "1", "-q"],
        "dataset 'c' has a non-finite x = inf",
    ),
    "empty_file": ("", "in.csv", [], "in.csv: file is empty"),
    "lam_zero": ("dataset_id,x\n1,2.0\n", "in.csv", ["--lam", "0"], "argument --lam: must be"),
    "memory_limit_too_small": (
        "dataset_id,x\n1,2.0\n",
        "in.csv",
        ["--memory-limit", "1KB"],
        "in.csv: DuckDB ran out of memory (",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path, case):
    content, name, extra, message = BAD_INPUTS[case]
    if callable(content):
        content(tmp_path / name)
    elif content is not None:
        (tmp_path / name).write_text(content)
    proc = run("fit", name, "-o", "out.parquet", *extra, cwd=tmp_path)
    assert proc.returncode == 2
    lines = terminal_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if content is not None else [])


def test_output_that_is_a_folder_exits_2(tmp_path):
    (tmp_path / "d.csv").write_text("dataset_id,x\n1,2.0\n")
    (tmp_path / "out.parquet").mkdir()
    proc = run("fit", "d.csv", "-o", "out.parquet", cwd=tmp_path)
    assert proc.returncode == 2 and len(terminal_lines(proc.stderr)) == 1
    assert "out.parquet: is a folder" in proc.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_output_where_no_file_can_be_made_names_the_output(tmp_path, capsys):
    # /proc is a folder in which no file can be created, whoever runs the tests (root too).
    (tmp_path / "d.csv").write_text("dataset_id,x\n1,2.0\n")
    assert main(["fit", str(tmp_path / "d.csv"), "-o", "/proc/r.parquet", "-q"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "jaxvi fit: error: /proc/r.parquet: cannot write in /proc (No such file or directory)\n"
    )
    assert main(["fit", str(tmp_path / "d.csv"), "-o", str(tmp_path / "r.parquet"), "-q"]) == 0
    assert main(["report", str(tmp_path / "r.parquet"), "-o", "/proc/rep", "-q"]) == 2
    assert capsys.readouterr().err == (
        "jaxvi report: error: /proc/rep: cannot write in /proc (No such file or directory)\n"
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["KILL", "TERM"])
def test_run_killed_while_writing_leaves_no_output(tmp_path, sig):
    _sorted_long_parquet(tmp_path / "d.parquet", 3000, 2)
    out = tmp_path / "r.parquet"
    env = dict(ENV, JAXVI_TEST_PAUSE_AFTER_CHUNK="60")
    cmd = [*JAXVI, "fit", tmp_path / "d.parquet", "-o", out, "--batch-size", "100", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        partial = []
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in tmp_path.glob(".r.parquet.*.tmp") if p.stat().st_size > 0]
            if partial:
                break
            time.sleep(0.1)
        assert partial, "the run never started writing"
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert not out.exists()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # a polite stop also removes the temporary file
        assert proc.returncode == 128 + signal.SIGTERM
        assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet"]


@pytest.mark.parametrize("missing", ["duckdb", "pyarrow"])
def test_fit_without_the_cli_extra_names_it(tmp_path, missing):
    (tmp_path / "d.csv").write_text("dataset_id,x\n1,0.5\n1,1.5\n2,3.0\n")
    script = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from jaxvi.cli import main\n"
        "sys.exit(main(['fit', 'd.csv', '-o', 'r.npz', '-q']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert f"need {missing}, which is not installed" in line
    assert 'pip install "jaxvi[cli]"' in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_simulate_to_npz_needs_numpy_only_and_ragged_npz_keeps_empty_datasets(tmp_path):
    script = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['duckdb'] = None\n"
        "from jaxvi.cli import main\n"
        "sys.exit(main(['simulate', '-n', '50', '--sizes', '0:6', '--dtype', 'float64',\n"
        "               '-o', 's.npz', '-q']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "s.npz") as sim, np.load(tmp_path / "s.truth.npz") as truth:
        assert sim["ids"].tolist() == list(range(50)) and sim["values"].dtype == np.float64
        assert np.array_equal(np.diff(sim["offsets"]), truth["n"])
        sizes = truth["n"]
    ok("fit", tmp_path / "s.npz", "-o", tmp_path / "s.csv", "-q")
    got = read(tmp_path / "s.csv")
    # A ragged NPZ keeps empty datasets (n = 0, the prior); a long table cannot hold them.
    assert got["dataset_id"].tolist() == list(range(50))
    assert got["n"].tolist() == sizes.tolist() and (sizes == 0).any()
    np.testing.assert_allclose(got["theta"][sizes == 0], 1.0)


def test_help_is_complete():
    proc = run("--help")
    assert proc.returncode == 0
    for name in ("demo", "simulate", "fit", "report"):
        assert name in proc.stdout
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"demo", "simulate", "fit", "report", "bench"} == set(sub.choices)
    for name, p in sub.choices.items():
        assert name in proc.stdout
        assert p.description and len(p.format_help()) > 300, name
    wanted = {
        "simulate": ["-n", "-o", "--lam", "--sigma", "--sizes", "--seed", "--dtype"],
        "fit": ["--lam", "--sigma", "--theta", "--dtype", "--batch-size", "--id-column",
                "--value-column", "--quiet", "sum_x2", "sorted by id", "--lam-column",
                "--sigma-column", "--memory-limit", "--threads", "estimate", "glob",
                "OUTPUT.json"],
        "report": ["--truth", "-o", "coverage.png", "summary.txt"],
    }  # fmt: skip
    for name, options in wanted.items():
        text = sub.choices[name].format_help()
        for option in options:
            assert option in text, (name, option)
    # The help states fit_table's batch size (written out, so that --help imports no NumPy).
    from jaxvi._results.table_fit import BATCH_SIZE

    batch = next(a for a in sub.choices["fit"]._actions if a.dest == "batch_size")
    assert batch.help.endswith(f"(default: {BATCH_SIZE})")


@pytest.mark.parametrize(
    ("text", "value"), [("100000", 100000), ("100_000", 100000), ("1e5", 100000), ("7", 7)]
)
def test_counts_read_as_written(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "abc", "inf", "nan", "1e-3"])
def test_counts_that_are_no_positive_integer_are_refused(text, capsys):
    with pytest.raises(SystemExit) as info:  # argparse's usage error
        main(["demo", "-n", text])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxvi demo: error: argument -n/--num-datasets: ") and "\n" == err[-1]
    assert "positive_int" not in err  # not argparse's "invalid positive_int value"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "expected LOW:HIGH or N, e.g. 1:64; got 'abc'"),  # not 'abc:abc'
        ("1:2:3", "expected LOW:HIGH or N, e.g. 1:64; got '1:2:3'"),
        ("5:2", "need 0 <= LOW <= HIGH, got '5:2'"),
        ("-1", "need 0 <= LOW <= HIGH, got '-1'"),
    ],
)
def test_sizes_that_are_no_range_name_the_text_as_typed(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(message)}$"):
        size_pair(text)
    assert size_pair("4") == (4, 4) and size_pair("1:64") == (1, 64)


def test_demo_takes_one_size_as_simulate_does(capsys):
    assert main(["demo", "-n", "200", "--sizes", "3"]) == 0
    assert "jaxvi demo: 200 simulated datasets of 3 points" in capsys.readouterr().out


def test_console_script_runs_the_demo():
    jaxvi = Path(sys.executable).with_name("jaxvi")
    proc = subprocess.run(
        [jaxvi, "demo", "-n", "500", "--sizes", "1:8"], capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 0, proc.stderr
    assert "jaxvi demo: 500 simulated datasets of 1-8 points" in proc.stdout


def test_progress_bar_on_stderr_unless_quiet(tmp_path, capsys, monkeypatch):
    # In process, through the real entry point: the bar only appears once a run takes > 1 s,
    # so each chunk is made to take 0.5 s.
    _sorted_long_parquet(tmp_path / "d.parquet", 300, 4)
    monkeypatch.setenv("JAXVI_TEST_PAUSE_AFTER_CHUNK", "0.5")
    args = ["fit", str(tmp_path / "d.parquet"), "-o", str(tmp_path / "r.csv"), "--batch-size"]
    assert main([*args, "100"]) == 0
    out, err = capsys.readouterr()
    assert "300datasets" in err.replace(" ", "")
    assert "fitted 300 datasets" in out
    assert main([*args, "100", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_progress_bar_counts_small_totals_as_integers(capsys):
    pytest.importorskip("tqdm")
    from jaxvi._progress import progress_bar

    for total, shown in ((10, "10/10"), (2_000_000, "2.00M/2.00M")):
        with progress_bar(True, "datasets", total, delay=0.0, leave=True) as bar:
            bar.update(total)
        assert shown in capsys.readouterr().err  # not "10.0/10.0"
    with progress_bar(True, "%", 100, delay=0.0, leave=True, scale=True) as bar:  # query's
        for _ in range(3):
            bar.update(0.1)
    assert "0.30/100" in capsys.readouterr().err  # not 0.30000000000000004


def test_values_beyond_float32_name_the_dataset_and_the_fix(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("dataset_id,x\na,1.0\nb,1e300\n")
    out = tmp_path / "r.csv"
    assert main(["fit", str(tmp_path / "d.csv"), "-o", str(out), "-q"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "dataset 'b' has values beyond float32 (mean 1e+300); compute in float64" in line
    assert line.startswith(f"jaxvi fit: error: {tmp_path / 'd.csv'}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_the_kernel_loads_once_the_query_runs_and_not_for_bad_input(monkeypatch, tmp_path):
    """The command's loader thread (JAX's import, the kernel's load) starts once DuckDB's
    query runs: bad input fails at once, without importing JAX (0.24 s, against 1.0 s when the
    loader started first and the error waited for it)."""
    from jaxvi._cli import fit_command

    calls: list[str] = []
    monkeypatch.setattr(fit_command, "warm_kernel", lambda args, dtype: calls.append(dtype))
    assert main(["fit", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "r.parquet")]) == 2
    assert calls == []
    src = tmp_path / "d.parquet"
    pq.write_table(pa.table({"dataset_id": [1, 1, 2], "x": [0.5, 1.5, 2.0]}), src)
    assert main(["fit", str(src), "-o", str(tmp_path / "r.parquet"), "-q"]) == 0
    assert calls == ["float32"]


@pytest.mark.parametrize("given", [None, "3"])
def test_the_command_gives_openblas_one_thread_unless_told(given):
    """OpenBLAS's idle threads spin (no command does linear algebra): the command sets one
    thread before NumPy loads, and keeps the user's own setting."""
    code = (
        "import os, jaxvi.cli as c\n"
        "c.main = lambda: print(os.environ['OPENBLAS_NUM_THREADS']) or 0\n"
        "c.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, f"{given or 1}\n")


def test_a_loader_that_fails_leaves_the_kernel_to_the_solve(monkeypatch, tmp_path, capfd):
    """An error in the loader thread is not printed from the thread and does not stop the
    run: the first solve compiles or loads the kernel itself, with the same results."""
    from jaxvi._cli import fit_command

    def broken(args, dtype):
        raise RuntimeError("the cache folder vanished")

    monkeypatch.setattr(fit_command, "warm_kernel", broken)
    src = tmp_path / "d.parquet"
    pq.write_table(pa.table({"dataset_id": [1, 1, 2], "x": [0.5, 1.5, 2.0]}), src)
    out = tmp_path / "r.parquet"
    assert main(["fit", str(src), "-o", str(out), "-q"]) == 0
    assert capfd.readouterr().err == ""
    assert pq.read_table(out)["n"].to_pylist() == [2, 1]
