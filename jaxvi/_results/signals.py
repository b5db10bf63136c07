"""SIGINT and SIGTERM in the command: raised where the main thread is, and remembered.

Python raises a signal's exception wherever the main thread happens to be, and some code there
loses it:

- a garbage-collector callback cannot raise: Python reports the exception as unraisable and
  goes on. JAX installs one in every process that imports it, and ``distributed``'s scheduler
  (a ``LocalCluster`` runs it in the command's process) another;
- ``fsspec``'s ``exists`` answers False on any exception;
- an exception inside ``__set_name__`` comes out as a ``RuntimeError``.

So :func:`handle_signals` records each signal. One that Python reports as unraisable is sent
again, from a thread, once the code that lost it has returned. :func:`raise_if_signalled`
raises a recorded one again: the command calls it between steps, and the atomic writers
(:mod:`jaxvi._results.atomic`) before they rename their output into place. A run that was
asked to stop never leaves a file, whoever lost the signal.

Only :func:`handle_signals` records anything: a program that calls the library keeps its own
handlers, and :func:`raise_if_signalled` does nothing in it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "handle_signals", "raise_if_signalled", "stopped_by"]

# The signals received under handle_signals, in order, and how many of their exceptions were
# raised (by the handler or raise_if_signalled).
_received: list[int] = []
_count = {"raised": 0}
# How long after a lost signal it is sent again: time for the code that lost it to return.
RESEND_SECONDS = 0.01


class Terminated(BaseException):
    """SIGTERM (a batch scheduler stopping the job), raised where the main thread is."""


def _exception(signum: int) -> BaseException:
    _count["raised"] += 1
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _record(signum: int, frame: object) -> None:
    # Unwinding (instead of dying at once) lets a running DuckDB query be interrupted and the
    # atomic writers delete their temporary files.
    _received.append(signum)
    raise _exception(signum)


def _resend(signum: int, raised: int) -> None:
    """Send ``signum`` to the main thread again, unless an exception was raised since it was
    lost (``raised`` of them were then: the run is unwinding, and a second one would break its
    clean-up) or the block ended."""
    if _received and _count["raised"] == raised:
        signal.pthread_kill(threading.main_thread().ident or 0, signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGINT raises :class:`KeyboardInterrupt` and SIGTERM
    :class:`Terminated`, and both are recorded. A signal's exception that Python reports as
    unraisable (raised in a garbage-collector callback, say) is not printed: the signal is
    sent again after :data:`RESEND_SECONDS`. The previous handlers come back after the block.
    Call it from the main thread."""
    previous = {s: signal.signal(s, _record) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, (KeyboardInterrupt, Terminated)):
            previous_hook(info)
            return
        signum = signal.SIGINT if isinstance(info.exc_value, KeyboardInterrupt) else signal.SIGTERM
        resend = threading.Timer(RESEND_SECONDS, _resend, (signum, _count["raised"]))
        resend.daemon = True
        resend.start()

    sys.unraisablehook = unraisable
    _received.clear()
    _count["raised"] = 0
    try:
        yield
    finally:
        _received.clear()  # before the handlers go: a resend due now does nothing
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook


def raise_if_signalled() -> None:
    """Raise the exception of the first signal received under :func:`handle_signals` again
    (some code may have lost it); nothing if none was, or outside the block.

    Examples:
        >>> raise_if_signalled()  # no signal: nothing happens
    """
    if _received:
        raise _exception(_received[0])


def stopped_by(err: BaseException) -> int | None:
    """The signal that ended a run that raised ``err``: the first one received under
    :func:`handle_signals` (whatever ``err`` a library made of it), else the signal that
    ``err`` stands for, else None."""
    if _received:
        return _received[0]
    if isinstance(err, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(err, Terminated):
        return signal.SIGTERM
    return None
