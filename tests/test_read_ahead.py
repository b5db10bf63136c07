"""The statistics' reader thread (:class:`jaxvi._tables.read_ahead.ReadAhead`): items in
order and all of them, at most its limit held, errors in their place, reading while the caller
works, and a stop that interrupts the query and joins the thread."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvi._tables.read_ahead import ReadAhead


class Connection:
    """DuckDB's connection as the reader sees it: ``interrupt()`` stops the running query."""

    def __init__(self) -> None:
        self.interrupted = threading.Event()

    def interrupt(self) -> None:
        self.interrupted.set()


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "jaxvi-read-ahead"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(), max_size=5), max_size=20), st.integers(1, 12))
def test_every_item_in_order(items, limit):
    with ReadAhead(iter(items), Connection(), lambda: limit) as reader:
        assert list(reader) == items
    assert _threads() == []


def test_the_reader_works_while_the_caller_does_and_holds_its_limit():
    pulled: list[int] = []

    def items():
        for k in range(10):
            pulled.append(k)
            yield [k] * 3  # 3 units each

    with ReadAhead(items(), Connection(), lambda: 7) as reader:
        first = next(reader)
        time.sleep(0.3)  # the caller solves: the reader fills up to 7 units (3 items), no more
        assert first == [0, 0, 0]
        assert pulled == [0, 1, 2, 3]
        assert list(reader) == [[k] * 3 for k in range(1, 10)]


def test_an_error_comes_after_the_items_before_it():
    def items():
        yield "a"
        yield "b"
        raise ValueError("data.parquet: dataset 7 has a missing x")

    with ReadAhead(items(), Connection(), lambda: 100) as reader:
        assert next(reader) == "a"
        assert next(reader) == "b"
        with pytest.raises(ValueError, match="dataset 7"):
            next(reader)


def test_close_interrupts_a_running_query_and_joins_the_thread():
    con = Connection()
    closed = threading.Event()

    def items():
        try:
            yield "first"
            con.interrupted.wait(30)  # a long query, until interrupted
            raise RuntimeError("INTERRUPT Error: Interrupted!")
        finally:
            closed.set()

    reader = ReadAhead(items(), con, lambda: 100)
    assert next(reader) == "first"
    time.sleep(0.1)  # the reader is in the query now
    start = time.monotonic()
    reader.close()
    assert time.monotonic() - start < 2
    assert con.interrupted.is_set()
    assert closed.is_set()  # the generator was closed on its thread
    assert _threads() == []


def test_close_while_held_at_the_limit_stops_without_an_interrupt():
    con = Connection()
    reader = ReadAhead(iter(range(100)), con, lambda: 2, size=lambda _: 1)
    assert next(reader) == 0
    time.sleep(0.1)
    reader.close()
    assert not con.interrupted.is_set()
    assert _threads() == []


def test_close_interrupts_a_query_that_starts_after_the_first_interrupt():
    """An interrupt sent while the thread is between queries is lost (DuckDB's interrupt
    stops the query running, if any): close repeats it until the thread ends."""
    con = Connection()
    between = threading.Event()

    def items():
        yield "first"
        between.set()
        time.sleep(0.3)  # checks between two queries: the first interrupt comes now
        con.interrupted.clear()  # ... and is lost
        con.interrupted.wait(30)  # the next query, until interrupted again
        raise RuntimeError("INTERRUPT Error: Interrupted!")

    reader = ReadAhead(items(), con, lambda: 100)
    assert next(reader) == "first"
    between.wait(5)
    start = time.monotonic()
    reader.close()
    assert time.monotonic() - start < 1.5
    assert _threads() == []


def test_an_error_while_closing_the_items_reaches_the_caller():
    class Items:
        def __iter__(self):
            return self

        def __next__(self):
            raise StopIteration

        def close(self):
            raise OSError("data.parquet: cannot release the cursor")

    with ReadAhead(Items(), Connection(), lambda: 10) as reader, pytest.raises(OSError):
        next(reader)
