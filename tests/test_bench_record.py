"""``jaxvi bench --json``, ``--plot`` and ``--compare``: the record a script reads.

No timing is asserted; the record's numbers are checked against each other (a fraction of
``jnp.sum`` is the contender's GB/s over the roofline's, datasets/s is datasets over seconds).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jaxlib
import pytest

from jaxvi._tools.bench import BenchReport, BenchRow
from jaxvi._tools.record import SCHEMA, bench_record, compare_records, read_record, write_record
from jaxvi.cli import main

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report(kind: str = "NVIDIA H100 80GB HBM3", nominal: float | None = 3350.0) -> BenchReport:
    roof = BenchRow("jnp.sum (roofline, padded)", 0.001, 0.1, 1000, 2_000_000, 1e6, 2000.0, 1.0,
                    kind="roofline")  # fmt: skip
    solve = BenchRow("padded solve, lengths", 0.002, 0.5, 1000, 2_000_000, 5e5, 1000.0, 0.5,
                     headline=True)  # fmt: skip
    peer = BenchRow("NumPy reduceat (float64)", 0.01, 0.0, 1000, 2_000_000, 1e5, 200.0, 0.1,
                    3e-7, kind="peer")  # fmt: skip
    return BenchReport("GPU " + kind, kind, nominal, jax.__version__, [roof, solve, peer],
                       platform="gpu", device_count=2, settings={"reps": 3})  # fmt: skip


def test_record_holds_the_device_versions_and_every_contender():
    rec = bench_record(_report())
    assert rec["schema"] == SCHEMA
    assert rec["device"] == {
        "platform": "gpu",
        "kind": "NVIDIA H100 80GB HBM3",
        "count": 2,
        "nominal_gb_per_s": 3350.0,
        "summary": "GPU NVIDIA H100 80GB HBM3",
    }
    assert rec["versions"]["jax"] == jax.__version__
    assert rec["versions"]["jaxlib"] == jaxlib.__version__
    assert rec["settings"]["reps"] == 3 and rec["settings"]["created"].endswith("+00:00")
    [solve] = rec["workloads"]
    assert solve["fraction_of_sum"] == 0.5 and solve["compile_s"] == 0.5
    assert solve["fraction_of_nominal"] == pytest.approx(1000.0 / 3350.0)
    assert solve["max_rel_err_theta"] is None  # NaN (not measured) becomes null
    assert [p["name"] for p in rec["peers"]] == ["NumPy reduceat (float64)"]
    assert rec["peers"][0]["max_rel_err_theta"] == 3e-7
    # Unknown bandwidth (a CPU): null, never a made-up number.
    assert bench_record(_report("cpu", None))["workloads"][0]["fraction_of_nominal"] is None


def test_compare_prints_records_side_by_side(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_record(bench_record(_report()), a)
    slow = _report("NVIDIA A100-SXM4-40GB", 1555.0)
    slow.rows[1] = BenchRow("padded solve, lengths", 0.004, 0.5, 1000, 2_000_000, 2.5e5, 500.0,
                            0.4)  # fmt: skip
    del slow.rows[2]  # no peers ran there
    write_record(bench_record(slow), b)
    text = compare_records([read_record(a), read_record(b)], [a, b])
    assert "A100" in text and "H100" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("padded solve, lengths"))
    assert line.split()[-3:] == ["2.5e+05", "0.40", "0.50x"]
    peer = next(ln for ln in text.splitlines() if ln.startswith("NumPy reduceat"))
    assert peer.split()[-3:] == ["-", "-", "-"]


def test_read_record_refuses_other_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a jaxvi bench record"):
        read_record(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not JSON"):
        read_record(bad)
    rec = bench_record(_report())
    del rec["workloads"][0]["gb_per_s"]
    bad.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"padded solve, lengths.*gb_per_s"):
        read_record(bad)


def test_compare_of_a_foreign_file_exits_2_naming_it(tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text("[]")
    assert main(["bench", "--compare", str(bad)]) == 2
    assert "notes.json: not a jaxvi bench record" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_json_and_plot_from_the_command(tmp_path):
    """The issue's command, as a user runs it (its own process, no fake devices)."""
    record, png, both = tmp_path / "r.json", tmp_path / "r.png", tmp_path / "both.png"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cmd = [sys.executable, "-m", "jaxvi", "bench", "-n", "20000", "--padded-rows", "20000"]
    cmd += ["--peers", "none", "--reps", "2", "--json", str(record), "--plot", str(png)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = read_record(record)
    assert rec["device"]["platform"] == "cpu" and rec["device"]["count"] == 1
    assert rec["device"]["nominal_gb_per_s"] is None
    assert rec["settings"]["num_datasets"] == 20000 and rec["peers"] == []
    names = {w["name"] for w in rec["workloads"]}
    assert {"padded solve, lengths", "ragged fit", "ragged stats, jit(suff_stats_ragged)"} <= names
    sums = {r["name"]: r for r in rec["roofline"]}
    for w in rec["workloads"]:
        assert w["datasets_per_s"] == pytest.approx(w["num_datasets"] / w["seconds"])
        roof = sums["jnp.sum (roofline, padded)" if "padded" in w["name"] else
                    "jnp.sum (roofline, ragged)"]  # fmt: skip
        assert w["fraction_of_sum"] == pytest.approx(w["gb_per_s"] / roof["gb_per_s"])
        assert w["fraction_of_nominal"] is None and w["compile_s"] >= 0
    assert png.read_bytes().startswith(PNG_MAGIC)
    # Two records on one plot, and side by side.
    assert main(["bench", "--compare", str(record), str(record), "--plot", str(both)]) == 0
    assert both.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow
def test_accelerator_check_runs_in_cpu_mode(tmp_path):
    """The GPU script's CPU mode at a tiny scale, in this environment (no install): every step
    passes and leaves its results under $OUT."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(
        OUT=str(out),
        JAXVI_CHECK_MODE="cpu",
        JAXVI_CHECK_PYTHON=sys.executable,
        JAXVI_CHECK_SCALE="0.005",
        JAXVI_CHECK_REPS="1",
        JAXVI_CHECK_TESTS="tests/test_padding.py",
    )
    script = ROOT / "benchmarks" / "accelerator_check.sh"
    proc = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=400)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()[1:]]
    assert [s[0] for s in steps] == ["devices", "tests", "bench", "targets", "benchmarks"]
    assert all(s[1] == "0" for s in steps)
    assert read_record(out / "bench.json")["device"]["platform"] == "cpu"
    assert (out / "bench.png").read_bytes().startswith(PNG_MAGIC)
    targets = (out / "targets.log").read_text()
    assert "ragged fit from host NumPy" in targets
    # Every target found its contender in the record (a name that drifted would print "-").
    assert len(re.findall(r"\b(met|missed)\s*$", targets, re.MULTILINE)) == 3, targets
    assert json.loads((out / "benchmarks.json").read_text())["benchmarks"]
    assert 'failures="0"' in (out / "tests.xml").read_text()


def test_accelerator_check_reports_a_failing_step(tmp_path):
    """A step that fails is named, the others still run, and the exit code says so."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(OUT=str(out), JAXVI_CHECK_MODE="gpu", JAXVI_CHECK_PYTHON=sys.executable,
               JAXVI_CHECK_TESTS="tests/does_not_exist.py", JAXVI_CHECK_SCALE="0.001",
               JAXVI_CHECK_REPS="1")  # fmt: skip
    if jax.default_backend() == "gpu":
        pytest.skip("this machine has a GPU: the gpu mode would pass")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "accelerator_check.sh")],
                          env=env, capture_output=True, text=True, timeout=400)  # fmt: skip
    assert proc.returncode == 1
    steps = dict(line.split("\t")[:2] for line in (out / "steps.tsv").read_text().splitlines())
    assert steps["devices"] != "0" and steps["tests"] != "0"  # no GPU; no such test file
    assert "expected the gpu backend" in (out / "devices.log").read_text()
    assert "devices failed" in proc.stdout
