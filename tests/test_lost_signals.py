"""A signal whose exception some code loses still stops the command, and leaves no output.

The failure these guard against was seen on CI: SIGINT reached ``jaxvi fit --scheduler`` while
a garbage-collector callback of ``distributed``'s scheduler ran in the main thread; Python
reported the KeyboardInterrupt as unraisable and went on, and the run ended with exit code 0.
Here the signals are real (``os.kill`` of this process), and the code that loses them is a gc
callback, a bare ``except``, and a library that turns them into another error.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxvi import cli
from jaxvi._results import table_fit
from jaxvi._results.atomic import atomic_folder, atomic_path
from jaxvi._results.signals import (
    Terminated,
    handle_signals,
    raise_if_signalled,
    stopped_by,
)

EXCEPTION = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])


def _lose(sig: int) -> None:
    """Send ``sig`` to this process and swallow what its handler raises, as a bare
    ``except`` does; fails if the handler did not run."""
    try:
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler interrupts the sleep
    except BaseException:  # the library code that loses the signal
        return
    raise AssertionError("the signal's handler did not run")


@SIGNALS
def test_a_lost_signal_is_raised_again_and_the_handlers_come_back(sig):
    before = signal.getsignal(sig)
    with handle_signals():
        raise_if_signalled()  # nothing received yet
        _lose(sig)
        with pytest.raises(EXCEPTION[sig]):
            raise_if_signalled()
        assert stopped_by(RuntimeError("made of the signal")) == sig
    assert signal.getsignal(sig) is before
    raise_if_signalled()  # outside the block: nothing recorded, nothing raised
    assert stopped_by(RuntimeError("an error")) is None
    assert stopped_by(KeyboardInterrupt()) == signal.SIGINT


def _collect_losing(sig: int) -> list[str]:
    """A garbage collection whose callback (as JAX's and distributed's scheduler's do) runs
    when ``sig``'s handler does; Python cannot raise from it. The callback's calls."""
    calls = []

    def callback(phase: str, info: dict) -> None:
        if phase == "start" and not calls:
            calls.append(phase)
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler interrupts the sleep, in the callback

    gc.callbacks.append(callback)
    try:
        gc.collect()  # the signal's exception is unraisable here
    finally:
        gc.callbacks.remove(callback)
    return calls


@SIGNALS
def test_a_signal_lost_in_a_gc_callback_is_sent_again_and_not_printed(capfd, sig):
    with handle_signals():
        with pytest.raises(EXCEPTION[sig]):
            assert _collect_losing(sig) == ["start"]
            time.sleep(5)  # the signal, sent again, interrupts this sleep
    assert capfd.readouterr().err == ""


def test_a_lost_signal_is_not_sent_again_once_the_run_unwinds(capfd):
    """Raised again in between (the command's checks do), the run is unwinding: a second
    exception would break its clean-up."""
    with handle_signals():
        _collect_losing(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            raise_if_signalled()
        time.sleep(0.2)  # no second KeyboardInterrupt interrupts this
    assert capfd.readouterr().err == ""


@SIGNALS
def test_atomic_writers_give_nothing_after_a_lost_signal(tmp_path, sig):
    with handle_signals():
        with pytest.raises(EXCEPTION[sig]), atomic_path(tmp_path / "r.csv") as tmp:
            tmp.write_text("whole, but the run was asked to stop")
            _lose(sig)
        with pytest.raises(EXCEPTION[sig]), atomic_folder(tmp_path / "parts") as folder:
            (folder / "part-0.parquet").write_text("whole")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.fixture
def table(tmp_path):
    """Three datasets in one Parquet file."""
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"dataset_id": [0, 0, 1, 2], "x": np.arange(4.0)}), path)
    return path


@SIGNALS
def test_the_command_stops_after_a_signal_lost_while_solving(
    table, tmp_path, monkeypatch, capsys, sig
):
    """Three batches of one dataset: the signal lost while solving the first stops the run
    before the second is solved, and no file is left."""
    solve, solved = table_fit.result_batch, []

    def losing(*args, **kwargs):
        if not solved:
            _lose(sig)
        solved.append(1)
        return solve(*args, **kwargs)

    monkeypatch.setattr(table_fit, "result_batch", losing)
    out = tmp_path / "r.parquet"
    argv = ["fit", str(table), "-o", str(out), "-q", "--batch-size", "1"]
    assert cli.main(argv) == 128 + sig
    assert capsys.readouterr().err == "jaxvi fit: interrupted\n"
    assert solved == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_a_signal_made_into_another_error_is_reported_as_the_signal(
    table, tmp_path, monkeypatch, capsys
):
    """Python turns an exception inside ``__set_name__`` into a RuntimeError, and libraries
    wrap errors: the command still says it was interrupted, with no traceback."""

    def wrapping(*args, **kwargs):
        with contextlib.suppress(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        raise RuntimeError("Error calling __set_name__")

    monkeypatch.setattr(table_fit, "result_batch", wrapping)
    assert cli.main(["fit", str(table), "-o", str(tmp_path / "r.csv"), "-q"]) == 130
    assert capsys.readouterr().err == "jaxvi fit: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_an_error_without_a_signal_is_still_a_traceback(table, tmp_path, monkeypatch):
    """A bug is not an interruption: it comes out as it is."""

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(table_fit, "result_batch", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["fit", str(table), "-o", str(tmp_path / "r.csv")])
