"""Statistics read ahead on a thread of their own, while the caller solves and writes.

DuckDB computes a group-by whole before its first batch comes out (for Parquet sorted by id,
one group-by per range of ids). Pulled from the caller's thread, DuckDB would sit idle while
the caller solves a range's batches, and the caller while DuckDB computes the next range.
:class:`ReadAhead` pulls the batches on a thread of its own, up to a number of datasets ahead,
so the two overlap. Errors raised while reading (a bad dataset, a DuckDB error) come out of
:meth:`ReadAhead.__next__` in their place, after the batches before them.

A signal still stops the query at once: the caller waits on a condition, which a signal
interrupts, and :meth:`ReadAhead.close` interrupts DuckDB's query and joins the thread.
Nothing here imports JAX.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from jaxvi._tables.engine import INTERRUPT_SECONDS

__all__ = ["ReadAhead"]

T = TypeVar("T")

# How often a reader held at its limit looks at the limit again (it may fall when the
# caller stops being busy, or rise).
_RECHECK_SECONDS = 0.05


class ReadAhead(Generic[T]):
    """Items of ``items`` pulled on a thread of their own, while fewer than ``limit()`` of
    ``size``'s units are held; an iterator that hands them over in order.

    Args:
        items: the iterator to read (a generator of DuckDB batches, usually); it is
            advanced, and closed, on the reading thread only.
        con: the DuckDB connection the items come from; interrupted by :meth:`close` while
            the thread still reads.
        limit: how many units may be held; read again as items come and go.
        size: an item's units (``len``: datasets of a batch of statistics).

    Use it as a context manager, or call :meth:`close`: the thread stops, even in the middle
    of a query, and is joined.
    """

    def __init__(
        self,
        items: Iterator[T],
        con: Any,
        limit: Callable[[], int],
        size: Callable[[T], int] = len,  # type: ignore[assignment]
    ):
        self._items, self._con = items, con
        self._limit, self._size = limit, size
        self._held: deque[T] = deque()
        self._units = 0
        self._done = self._stop = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="jaxvi-read-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for item in self._items:
                with self._cond:
                    self._held.append(item)
                    self._units += self._size(item)
                    self._cond.notify_all()
                    while not self._stop and self._units >= self._limit():
                        self._cond.wait(_RECHECK_SECONDS)
                    if self._stop:
                        return
        except BaseException as err:  # handed to the caller, in its place
            with self._cond:
                self._error = err
        finally:
            self._finish()

    def _finish(self) -> None:
        """Close the items on this thread (a generator's query and cursor are released here),
        then say that nothing more comes; an error while closing goes to the caller too."""
        try:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        except BaseException as err:
            with self._cond:
                self._error = self._error or err
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        with self._cond:
            while not self._held and not self._done:
                self._cond.wait()  # a signal interrupts the wait
            if self._held:
                item = self._held.popleft()
                self._units -= self._size(item)
                self._cond.notify_all()
                return item
            error, self._error = self._error, None
        if error is not None:
            raise error
        raise StopIteration

    def close(self) -> None:
        """Stop reading: interrupt the query if one runs, and join the thread.

        The interrupt is repeated until the thread ends (for :data:`INTERRUPT_SECONDS` at most):
        one sent just before the thread starts its next query would be lost."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(_RECHECK_SECONDS)
        deadline = time.monotonic() + INTERRUPT_SECONDS
        while self._thread.is_alive() and time.monotonic() < deadline:  # inside DuckDB
            self._con.interrupt()
            self._thread.join(_RECHECK_SECONDS)

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
