"""The embedded engine: one DuckDB connection per job, and its errors in one line.

DuckDB does *data → statistics* whenever the data is a table (DESIGN §2): it reads Parquet,
CSV and JSON in parallel, streams them, and spills to disk past its memory limit. User text
never becomes SQL: paths and values are bound parameters, column names quoted identifiers.

Nothing here imports JAX.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "INTERRUPT_SECONDS",
    "EngineError",
    "arrow_batches",
    "arrow_table",
    "connect",
    "duckdb_error",
    "interruptible",
    "quote",
    "require",
    "run_sql",
]

INSTALL_HINT = 'pip install "jaxvi[cli]"'

# How long an interrupted query may take to stop before the signal's exception goes on anyway
# (here, and in :mod:`jaxvi._tables.read_ahead`).
INTERRUPT_SECONDS = 1.5


def require(module: str) -> Any:
    """Import ``duckdb`` or ``pyarrow`` (the ``cli`` extra), or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"tables need {module}, which is not installed; {INSTALL_HINT}") from None


def _duckdb() -> Any:
    return require("duckdb")


def connect(
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | os.PathLike | None = None,
    keep_order: bool = False,
) -> Any:
    """A new in-memory DuckDB connection.

    Args:
        memory_limit: the most memory DuckDB may use, such as ``"2GB"`` or ``"500MB"``;
            DuckDB's default (80% of RAM) when ``None``. Group-bys and sorts larger than this
            spill to ``temp_directory``.
        threads: worker threads; all cores when ``None``.
        temp_directory: where spilled data go; when ``None``, this process's folder under
            the system's temporary directory, ``jaxvi_duckdb/<pid>`` (DuckDB removes its files
            when the connection closes; those of killed processes go when the next opens).
        keep_order: return a scan's rows in the input's order (DuckDB's
            ``preserve_insertion_order``); off by default, since the group-by's results come
            back sorted by id anyway and a parallel scan is cheaper without it.

    Raises:
        ValueError: a limit DuckDB does not accept, in one line.
    """
    duckdb = _duckdb()
    config: dict[str, Any] = {
        "temp_directory": os.fspath(temp_directory or _spill_folder()),
        "preserve_insertion_order": keep_order,
    }
    if memory_limit is not None:
        config["memory_limit"] = str(memory_limit)
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads must be a positive integer, got {threads}")
        config["threads"] = int(threads)
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as err:  # the one setting DuckDB can refuse is the memory limit
        raise duckdb_error(err, f"memory_limit {memory_limit!r}") from None
    # Read a Parquet row group's pages as they are decoded, not its column chunks whole ahead
    # of time: the statistics query on 10⁶ datasets peaked 15-75 MB lower, no slower. A
    # setting of the Parquet extension, which loads on first use, so not in ``config``.
    con.execute("SET disable_parquet_prefetching = true")
    # DuckDB draws a bar of its own on a query over 2 s; jaxvi draws one where asked. In
    # Jupyter without ipywidgets DuckDB refuses any change to the setting (and draws none).
    with contextlib.suppress(duckdb.Error):
        con.execute("SET enable_progress_bar = false")
    return con


def _spill_folder() -> str:
    """This process's spill folder, ``<tmp>/jaxvi_duckdb/<pid>``, after removing those of
    processes that are gone (a SIGKILLed run cannot remove its own)."""
    from jaxvi._tables.leftovers import remove_dead

    base = os.path.join(tempfile.gettempdir(), "jaxvi_duckdb")
    remove_dead(base)
    with contextlib.suppress(OSError):  # DuckDB makes the last folder of the path only
        os.makedirs(base, exist_ok=True)
    return os.path.join(base, str(os.getpid()))


def quote(name: str) -> str:
    """A SQL identifier for the column ``name``, whatever characters it holds (a double
    quote in it is doubled).

    Examples:
        >>> print(quote("my x"))
        "my x"
    """
    return '"' + name.replace('"', '""') + '"'


_PREFIX = re.compile(r"^[A-Za-z ]*(Error|Exception): ")


class EngineError(ValueError):
    """A DuckDB error in one line; ``column`` names the column a CSV or JSON reader could not
    convert to the type it had guessed from its sample of rows, if that was the error."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


def duckdb_error(err: BaseException, label: str) -> EngineError:
    """DuckDB's error as one line that starts with ``label`` (the input as the user named it).

    DuckDB's messages run over many lines (a CSV error lists the sniffer's settings); the
    line that says what went wrong is kept, with the CSV line number and the offending line
    when there are some.
    """
    text = str(err).strip()
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    head = _PREFIX.sub("", lines[0]) if lines else type(err).__name__
    fields: dict[str, str] = {}
    for s in lines:
        if m := re.match(r"^(file|Original Line) ?[=:] ?(.*)$", s):
            fields[m[1]] = m[2]
    where = fields.get("file", label)
    # The name as written, quotes included ('converting column ""q"". Could not convert').
    column = re.search(r'converting column "(.+?)"\. ', text)
    csv_line = re.match(r"CSV Error on Line: (\d+)", head)
    if csv_line:
        reason = next(
            (_PREFIX.sub("", s) for s in lines[1:] if not s.startswith("Original Line")), ""
        )
        original = fields.get("Original Line", "")
        return EngineError(
            f"{where}: line {csv_line[1]}: {reason} ({original!r})", column and column[1]
        )
    if "magic bytes" in head or "parquet" in head.lower():
        return EngineError(f"{where}: not a readable Parquet file ({head})")
    # DuckDB spills past its limit, but cannot go below the blocks it works in.
    if isinstance(err, getattr(_duckdb(), "OutOfMemoryException", ())):
        return EngineError(
            f"{label}: DuckDB ran out of memory ({head}); raise its memory limit "
            "(--memory-limit, memory_limit=) or free memory"
        )
    return EngineError(f"{label}: {head}")


def interruptible(con: Any, call: Callable[[], T]) -> T:
    """``call()``, a blocking DuckDB call on ``con``, run so that a signal stops it at once.

    Python runs a signal handler only in the main thread, between bytecodes: while DuckDB's
    C++ runs a query there, Ctrl-C and SIGTERM wait for the query to end. So the call runs in
    a helper thread while this one waits on a lock, which a signal does interrupt; when the
    handler raises (``KeyboardInterrupt``, or the command's ``Terminated`` for SIGTERM, see
    :mod:`jaxvi._results.signals`), the query is interrupted (``con.interrupt()``), the
    helper joined, and the exception goes on.
    The connection stays usable. Off the main thread, ``call()`` runs where it is.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as err:  # handed to the waiting thread
            outcome.append((False, err))
        finally:
            done.set()

    helper = threading.Thread(target=run, name="jaxvi-duckdb", daemon=True)
    helper.start()
    try:
        done.wait()
    except BaseException:
        con.interrupt()
        done.wait(INTERRUPT_SECONDS)
        raise
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def run_sql(con: Any, sql: str, params: Mapping[str, Any] | None, label: str) -> Any:
    """Run ``sql`` now (its results stay in DuckDB); DuckDB errors become one-line
    :class:`ValueError` naming ``label``. A signal interrupts it (:func:`interruptible`)."""
    duckdb = _duckdb()
    try:
        return interruptible(con, lambda: con.execute(sql, dict(params or {})))
    except duckdb.Error as err:
        raise duckdb_error(err, label) from None


def arrow_table(con: Any, sql: str, params: Mapping[str, Any] | None, label: str) -> Any:
    """The whole result of ``sql`` as an Arrow table; errors translated, signals heard."""
    duckdb = _duckdb()
    try:
        return interruptible(con, lambda: con.sql(sql, params=dict(params or {})).to_arrow_table())
    except duckdb.Error as err:
        raise duckdb_error(err, label) from None


def arrow_batches(
    con: Any, queries: Iterable[tuple[str, Mapping[str, Any]]], label: str, rows: int
) -> Iterator[Any]:
    """The results of ``queries`` (SQL and its parameters), one after the other, as Arrow
    record batches of exactly ``rows`` rows (the last may hold fewer), streamed: DuckDB hands
    over a vector of rows at a time, and only about one batch is held here. Errors while a
    query runs are translated too. A signal stops it at once: on the main thread through
    :func:`interruptible`; read on a thread of its own (:mod:`jaxvi._tables.read_ahead`),
    through that reader's ``close``."""
    pa = require("pyarrow")
    duckdb = _duckdb()
    pending: list[Any] = []
    count = 0
    try:
        for sql, params in queries:
            query = con.sql(sql, params=dict(params))  # planned, not run
            reader = interruptible(con, functools.partial(query.to_arrow_reader, rows))
            while (part := interruptible(con, functools.partial(next, reader, None))) is not None:
                pending.append(part)
                count += part.num_rows
                while count >= rows:
                    table = pa.Table.from_batches(pending)
                    yield from table.slice(0, rows).combine_chunks().to_batches()
                    rest = table.slice(rows)
                    pending, count = rest.to_batches(), rest.num_rows
    except duckdb.Error as err:
        raise duckdb_error(err, label) from None
    if count:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()
