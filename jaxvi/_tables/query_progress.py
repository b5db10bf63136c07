"""A progress bar of DuckDB's reading of the input, for the one group-by of an input that is
not read by ranges of ids (its first statistics come out only once it has read everything)."""

from __future__ import annotations

import threading
from typing import Any

from jaxvi._progress import NoBar, progress_bar

__all__ = ["QueryProgress"]


class QueryProgress:
    """A bar of DuckDB's progress through the input (its group-by reads everything before the
    first statistics come out), polled from a thread while the query runs."""

    def __init__(self, con: Any, enabled: bool, label: str):
        self.con, self.label = con, label
        self.bar = progress_bar(enabled, "%", 100, f"reading {label}", scale=True)
        self.drawn = not isinstance(self.bar, NoBar)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="jaxvi-query-progress", daemon=True)

    def __enter__(self) -> QueryProgress:
        if self.drawn:
            self.con.execute(
                "SET enable_progress_bar = true; SET enable_progress_bar_print = false; "
                "SET progress_bar_time = 0"
            )
            self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.done.wait(0.2):
            done = self.con.query_progress()
            if done >= 0:
                self.bar.update(max(0.0, round(done, 1) - self.bar.n))

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.done.set()
        if self.drawn:
            self.thread.join()
        if exc_type is None:  # the first statistics are out: the input has been read whole
            self.bar.update(100 - self.bar.n)  # (DuckDB's estimate can stop short, e.g. 33%)
        self.bar.close()
