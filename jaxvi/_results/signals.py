"""SIGINT and SIGTERM in the command: raised where the main thread is, and remembered.

Python raises a signal's exception wherever the main thread happens to be, and some code there
loses it. A garbage-collector callback cannot raise (Python reports the exception as
unraisable and goes on), and ``distributed``'s scheduler, which a ``LocalCluster`` runs in the
command's process, installs one; ``fsspec``'s ``exists`` answers False on any exception; an
exception inside ``__set_name__`` comes out as a ``RuntimeError``. So :func:`handle_signals`
also records the signal, and :func:`raise_if_signalled` raises it again: the command calls it
between steps, and the atomic writers (:mod:`jaxvi._results.atomic`) before they rename their
output into place. A run that was asked to stop never leaves a file, whoever lost the signal.

Only :func:`handle_signals` records anything: a program that calls the library keeps its own
handlers, and :func:`raise_if_signalled` does nothing in it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "handle_signals", "raise_if_signalled", "stopped_by"]

_received: list[int] = []  # the signals received under handle_signals, in order


class Terminated(BaseException):
    """SIGTERM (a batch scheduler stopping the job), raised where the main thread is."""


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _record(signum: int, frame: object) -> None:
    # Unwinding (instead of dying at once) lets a running DuckDB query be interrupted and the
    # atomic writers delete their temporary files.
    _received.append(signum)
    raise _exception(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGINT raises :class:`KeyboardInterrupt` and SIGTERM
    :class:`Terminated`, and both are recorded; a signal's exception that Python reports as
    unraisable (raised in a garbage-collector callback, say) is not printed, as it is
    recorded. The previous handlers come back after the block. Call it from the main thread."""
    previous = {s: signal.signal(s, _record) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, (KeyboardInterrupt, Terminated)):
            previous_hook(info)

    sys.unraisablehook = unraisable
    _received.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        _received.clear()


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
