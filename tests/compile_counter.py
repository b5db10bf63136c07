"""Counts XLA compilations, so tests can assert that a second call compiles nothing.

JAX times every backend compilation under the monitoring event
``/jax/core/compile/backend_compile_duration`` (``jax._src.dispatch.BACKEND_COMPILE_EVENT``),
once per executable built, whether by ``jit``, by an eager op or by ``.lower().compile()``.
A cached executable reuses nothing from this path, so the event is a reliable count of new
compilations (a persistent-cache hit still goes through it and counts, which errs on the safe
side).

Usage::

    from compile_counter import count_compilations

    f(x)  # warm up
    with count_compilations() as log:
        f(x)
    assert log.count == 0, log.names
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import jax.monitoring

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclass
class CompileLog:
    """The compilations seen inside a :func:`count_compilations` block, in order."""

    names: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.names)


@contextlib.contextmanager
def count_compilations() -> Iterator[CompileLog]:
    """Record every XLA compilation made in this thread while the block runs."""
    log = CompileLog()
    thread = threading.get_ident()

    def listener(event: str, duration: float, **kwargs: object) -> None:
        del duration
        if event == BACKEND_COMPILE_EVENT and threading.get_ident() == thread:
            log.names.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield log
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
