"""Ctrl-C and SIGTERM stop ``jaxvi fit`` at once, wherever it is, and leave nothing behind.

Real signals go to a real ``jaxvi fit`` process whose DuckDB query runs for several seconds
(2.4·10⁷ shuffled rows on one DuckDB thread): it must exit within 2 s of the signal with 130
(SIGINT) or 143 (SIGTERM), print one line, and leave no output, temporary or spill file. The
library is interruptible too: a KeyboardInterrupt during ``fit_table`` stops the query.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import signal_when_ready

import jaxvi

JAXVI = [sys.executable, "-m", "jaxvi"]
ROWS = 24_000_000


@pytest.fixture(scope="module")
def slow_input(tmp_path_factory):
    """A shuffled Parquet file whose group-by takes seconds on one thread."""
    path = tmp_path_factory.mktemp("interrupt") / "shuffled.parquet"
    rng = np.random.default_rng(25)
    ids = rng.integers(0, ROWS // 8, ROWS)
    pq.write_table(pa.table({"dataset_id": ids, "x": rng.standard_normal(ROWS)}), path)
    return path


def _run_and_signal(cmd, tmp_path, sig, after: float, env_extra=None):
    """Start ``cmd``, send ``sig`` ``after`` seconds in; (seconds to exit, code, stderr)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", TMPDIR=str(tmp_path / "tmp"), **(env_extra or {}))
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return signal_when_ready(proc, sig, lambda _: time.sleep(after))


def _leftovers(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_signal_during_the_query_stops_the_command_at_once(slow_input, tmp_path, sig):
    out = tmp_path / "out"
    out.mkdir()
    cmd = [*JAXVI, "fit", slow_input, "-o", out / "r.parquet", "--threads", "1", "-q"]
    seconds, code, err = _run_and_signal(cmd, tmp_path, sig, after=2.0)
    assert err == "jaxvi fit: interrupted\n"
    assert code == 128 + sig, err
    assert seconds < 2.0
    assert _leftovers(out) == []
    assert _leftovers(tmp_path / "tmp") == [], "DuckDB's spill files were left"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "npz"])
def test_signal_while_solving_and_writing_stops_the_command(tmp_path, fmt):
    """Paused after a batch is written (the query done, JAX loaded): Parquet through DuckDB,
    and NPZ's ragged layout through the native kernel's host function."""
    path = tmp_path / f"d.{fmt}"
    ids = np.repeat(np.arange(3000), 2)
    if fmt == "parquet":
        pq.write_table(pa.table({"dataset_id": ids, "x": np.ones(ids.size)}), path)
    else:
        np.savez(path, values=np.ones(ids.size), offsets=np.arange(0, ids.size + 1, 2))
    out = tmp_path / "out"
    out.mkdir()
    cmd = [*JAXVI, "fit", path, "-o", out / "r.csv", "--batch-size", "100", "-q"]
    pause = {"JAXVI_TEST_PAUSE_AFTER_CHUNK": "60"}
    seconds, code, err = _run_and_signal(cmd, tmp_path, signal.SIGINT, after=6.0, env_extra=pause)
    assert (err, code) == ("jaxvi fit: interrupted\n", 130)
    assert seconds < 2.0
    assert _leftovers(out) == []


def test_keyboard_interrupt_stops_fit_table_and_the_next_call_works(slow_input):
    main = threading.main_thread().ident
    sent: list[float] = []

    def interrupt() -> None:
        sent.append(time.monotonic())
        signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Timer(1.5, interrupt)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            jaxvi.fit_table(str(slow_input), threads=1)
        stopped = time.monotonic()
    finally:
        timer.cancel()
    # Typically 0.03-0.1 s, also with both cores busy; the bound leaves room for a loaded
    # machine (the query alone runs 3.6-10 s). The command's 2 s is tested above.
    assert sent and stopped - sent[0] < 3.0
    res = jaxvi.fit_table(pa.table({"dataset_id": [1, 1, 2], "x": [0.5, 1.5, 2.0]}))
    assert res["n"].to_pylist() == [2, 1]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_signal_while_simulating_stops_the_command(tmp_path, sig):
    """`jaxvi simulate` paused after its first chunk: the signal stops it within 2 s, and
    neither the data nor its truth file is left, nor a temporary file."""
    out = tmp_path / "out"
    out.mkdir()
    cmd = [*JAXVI, "simulate", "-n", "200000", "-o", out / "sim.parquet", "-q"]
    pause = {"JAXVI_TEST_PAUSE_AFTER_CHUNK": "60"}
    seconds, code, err = _run_and_signal(cmd, tmp_path, sig, after=5.0, env_extra=pause)
    assert (err, code) == ("jaxvi simulate: interrupted\n", 128 + sig)
    assert seconds < 2.0
    assert _leftovers(out) == []


@pytest.mark.slow
def test_signal_while_reporting_stops_the_command(tmp_path):
    """`jaxvi report` on 4·10⁶ datasets (4 s here), signalled 2 s in: it stops within 2 s, and
    the new report folder is not left half written."""
    results = tmp_path / "r.parquet"
    n = 4_000_000
    rng = np.random.default_rng(7)
    theta = rng.uniform(0.5, 2.0, n).astype(np.float32)
    columns = {
        "dataset_id": np.arange(n),
        "n": rng.integers(1, 40, n),
        **{c: theta for c in ("b", "theta", "elbo", "grad", "log_evidence", "kl_gap")},
        "q_mean": 1 / theta,
        "post_mean": 1 / theta,
        "post_sd": theta,
    }
    meta = {"lam": "1.0", "sigma": "1.0", "dtype": "float32"}
    pq.write_table(pa.table(columns).replace_schema_metadata(meta), results)
    cmd = [*JAXVI, "report", results, "-o", tmp_path / "report", "-q"]
    seconds, code, err = _run_and_signal(cmd, tmp_path, signal.SIGTERM, after=2.0)
    assert (err, code) == ("jaxvi report: interrupted\n", 143)
    assert seconds < 2.0
    assert not (tmp_path / "report").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
