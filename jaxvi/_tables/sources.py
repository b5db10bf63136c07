"""Where a table comes from: a file, a glob, a folder or an in-memory frame, as DuckDB sees it.

:func:`open_source` turns what the user passed into a :class:`Source`: a ``FROM`` clause
whose paths are bound parameters, the columns with their DuckDB types, and a label for error
messages. pandas and polars DataFrames and Arrow tables are scanned in place.

Nothing here imports JAX: the command opens its input and starts the query while JAX loads.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jaxvi._tables.csv_dialect import (
    CSV_BUFFER,
    CsvDialect,
    header_after_bom,
    literal,
    refuse_dialect_off_csv,
)
from jaxvi._tables.engine import quote as _quote
from jaxvi._tables.engine import run_sql

__all__ = ["Source", "file_format", "open_source"]

# File name endings DuckDB reads (compressed too), and their format.
_ENDINGS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
_COMPRESSED = ("", ".gz", ".zst")
_READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}
_VIEW = "jaxvi_source"


def file_format(path: str | os.PathLike) -> str | None:
    """``'parquet'``, ``'csv'``, ``'json'`` or ``'npz'`` by the name's ending; ``None`` if
    none of them.

    Examples:
        >>> file_format("runs/part-0.parquet"), file_format("a.CSV.gz"), file_format("b.npz")
        ('parquet', 'csv', 'npz')
    """
    name = Path(path).name.lower()
    if name.endswith(".npz"):
        return "npz"
    for ending, fmt in _ENDINGS.items():
        if any(name.endswith(ending + c) for c in _COMPRESSED):
            return fmt
    return None


@dataclass(frozen=True)
class Source:
    """A table as DuckDB reads it.

    Attributes:
        label: how messages name it: the path, glob or folder as given, or the frame's kind.
        fmt: ``'parquet'``, ``'csv'``, ``'json'``, or ``'frame'`` for an in-memory table.
        files: the files read, sorted (empty for a frame).
        columns: column name → DuckDB type (``'BIGINT'``, ``'VARCHAR'``, ``'DOUBLE'``, ...).
        types: columns whose type is imposed on the reader (CSV only).
        frame: the in-memory table DuckDB scans (``fmt == 'frame'``), else ``None``.
        casts: columns read as another DuckDB type, ``(column, type)``: ids that look like
            dates or booleans are labels (text); JSON's 128-bit integers are 64-bit ones.
        header: a CSV header that jaxvi read itself, ``(delimiter, names)``: DuckDB's
            sniffer fails on a UTF-8 byte-order mark followed by a quoted field.
        csv: the CSV dialect (:class:`CsvDialect`): RFC 4180's quote, the delimiter detected,
            unless the user asks for others.
    """

    label: str
    fmt: str
    files: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    frame: Any = field(default=None, repr=False, compare=False)
    casts: tuple[tuple[str, str], ...] = ()
    header: tuple[str, tuple[str, ...]] | None = None
    csv: CsvDialect = field(default_factory=CsvDialect)

    @property
    def relation(self) -> str:
        """The ``FROM`` clause; its parameters are :attr:`params`."""
        return self._relation()

    def _relation(self, file_column: str | None = None) -> str:
        if self.fmt == "frame":
            reader = _VIEW
        else:
            extra = ", types = $types" if self.types else ""
            if self.fmt == "csv":
                # RFC 4180's quote, not the sniffer's guess from a sample (which took ' for a
                # quote, or none when the first quoted field came late); "" is an empty string.
                q = literal(self.csv.quote)
                extra += (
                    f", buffer_size = {CSV_BUFFER}, quote = {q}, escape = {q}, "
                    "allow_quoted_nulls = false"
                )
                if self.csv.delimiter is not None and self.header is None:
                    extra += f", delim = {literal(self.csv.delimiter)}"
            if self.header is not None:
                delim, names = self.header
                delim = self.csv.delimiter or delim
                listed = ", ".join(literal(n) for n in names)
                extra += f", skip = 1, header = false, delim = {literal(delim)}, names = [{listed}]"
            if file_column:
                extra += f", filename = '{file_column}'"
            reader = f"{_READERS[self.fmt]}($files, union_by_name = true{extra})"
        if not self.casts:
            return reader
        casts = ", ".join(f"CAST({_quote(c)} AS {t}) AS {_quote(c)}" for c, t in self.casts)
        return f"(SELECT * REPLACE ({casts}) FROM {reader})"

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"files": list(self.files)} if self.files else {}
        if self.types:
            params["types"] = self.types
        return params

    def sql(self, select: str) -> str:
        """``select`` with ``{src}`` replaced by this source's ``FROM`` clause."""
        return select.replace("{src}", self.relation)

    def side_connection(self, con: Any) -> Any:
        """A second connection to ``con``'s database that sees this source: DuckDB runs one
        query at a time per connection, and a bad value is looked up while the statistics
        still stream out of ``con``. The caller closes it."""
        side = con.cursor()
        if self.frame is not None:
            side.register(_VIEW, self.frame)
        return side

    def where_in_files(self, con: Any, condition: str, params: dict[str, Any], column: str) -> str:
        """Where the first row (by file name) that meets ``condition`` comes from, as words
        for an error message: ``" (file F has no column 'x')"`` when the glob's or folder's
        file F lacks ``column`` (DuckDB gives its rows NULL there), ``" (in file F)"``
        otherwise, and ``""`` for one file or a frame, which the label names already. Used on
        the error path only."""
        if len(self.files) < 2:
            return ""
        tag = "jaxvi:file"
        sql = f'SELECT "{tag}" FROM {self._relation(tag)} WHERE {condition} ORDER BY 1 LIMIT 1'
        row = run_sql(con, sql, {**self.params, **params}, self.label).fetchone()
        if row is None:
            return ""
        file = row[0]
        own = _describe(con, Source(file, self.fmt, (file,)))
        if column not in own.columns:
            return f" (file {file} has no column {column!r})"
        return f" (in file {file})"

    def with_type(self, con: Any, column: str, kind: str) -> Source:
        """The same table with ``column`` read as the DuckDB type ``kind``: a CSV reader is
        told so (text is then the file's own characters), any other is cast."""
        if self.fmt == "csv":
            return _describe(con, replace(self, types={**self.types, column: kind}))
        return _describe(con, replace(self, casts=(*self.casts, (column, kind))))

    def with_types(self, con: Any, types: dict[str, str]) -> Source:
        """The same files with the columns in ``types`` read as those DuckDB types (so that a
        CSV value column holding text can be searched for the text)."""
        if self.fmt != "csv":  # DuckDB's JSON reader takes no types
            return self
        return _describe(con, replace(self, types={**self.types, **types}))


def _files_of(source: str) -> tuple[list[str], str]:
    """The files ``source`` names (a file, a glob or a folder), sorted, and their format."""
    path = Path(source)
    if any(c in source for c in "*?[") and not path.exists():
        files = sorted(f for f in glob.glob(source, recursive=True) if Path(f).is_file())
        if not files:
            raise ValueError(f"{source}: no files match")
    elif path.is_dir():
        files = sorted(
            str(p)
            for p in path.rglob("*")
            if p.is_file()
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
            and file_format(p) not in (None, "npz")
        )
        if not files:
            raise ValueError(f"{source}: the folder holds no Parquet, CSV or JSON file")
    elif not path.exists():
        raise ValueError(f"{source}: no such file")
    else:
        files = [source]
    odd = [f for f in files if file_format(f) is None]
    if odd:
        raise ValueError(
            f"{odd[0]}: unknown table format; use .parquet, .csv, .tsv, .json, .jsonl or "
            ".ndjson (optionally .gz or .zst)"
        )
    formats = {str(file_format(f)) for f in files}
    if len(formats) > 1:
        raise ValueError(f"{source}: mixes formats ({', '.join(sorted(formats))}); use one")
    for f in files:
        if os.path.getsize(f) == 0:
            raise ValueError(f"{f}: file is empty")
    return files, formats.pop()


def _frame(obj: Any) -> Any | None:
    """An object DuckDB scans in place (Arrow, pandas), or ``None`` if ``obj`` is none.

    A polars LazyFrame is collected first; a DuckDB relation and an Arrow RecordBatchReader
    are read into an Arrow table: the relation belongs to its own connection, and a reader can
    be scanned only once, where a bad value is looked up in the input a second time.
    """
    module = type(obj).__module__.split(".")[0]
    if type(obj).__name__ == "Series":  # one column, not a table of ids and values
        return None
    if module == "polars":
        return _no_half((obj.collect() if hasattr(obj, "collect") else obj).to_arrow())
    if module == "duckdb" and hasattr(obj, "to_arrow_table"):
        return obj.to_arrow_table()
    if module == "pyarrow" and hasattr(obj, "read_all"):
        return _no_half(obj.read_all())
    if module == "pyarrow" and hasattr(obj, "schema"):
        return _no_half(obj)
    if module == "pandas" and hasattr(obj, "dtypes"):
        half = [c for c, t in obj.dtypes.items() if str(t) in ("float16", "halffloat[pyarrow]")]
        return obj.astype(dict.fromkeys(half, "float32")) if half else obj
    if module in ("pyarrow", "pandas") or hasattr(obj, "__arrow_c_stream__"):
        return obj
    return None


def _no_half(table: Any) -> Any:
    """``table`` with its float16 columns as float32 (exact), which DuckDB does not scan."""
    import pyarrow as pa

    schema = table.schema
    if not any(pa.types.is_float16(f.type) for f in schema):
        return table
    fields = [f.with_type(pa.float32()) if pa.types.is_float16(f.type) else f for f in schema]
    return table.cast(pa.schema(fields, metadata=schema.metadata))


def _describe(con: Any, src: Source) -> Source:
    rows = run_sql(con, src.sql("DESCRIBE SELECT * FROM {src}"), src.params, src.label)
    return replace(src, columns={row[0]: row[1] for row in rows.fetchall()})


def open_source(con: Any, source: Any, csv: CsvDialect | None = None) -> Source:
    """Open ``source`` on the DuckDB connection ``con``.

    Args:
        con: a DuckDB connection (:func:`~jaxvi._tables.engine.connect`).
        source: a path (``str`` or ``os.PathLike``) to a Parquet, CSV (delimiter and header
            detected) or JSON file; a glob (``"runs/*.parquet"``, ``"data/**/*.csv"``); a
            folder, read recursively (names starting with ``.`` or ``_`` are skipped); or a
            pandas DataFrame, polars DataFrame or LazyFrame, Arrow table or RecordBatchReader,
            or DuckDB relation. The files of a glob or folder share one format; their
            columns are matched by name.
        csv: how CSV files are read; RFC 4180 (``"`` quotes, the delimiter detected) when
            ``None``. A dialect other than the default is refused for input that is not CSV.

    Returns:
        A :class:`Source` with its columns.

    Raises:
        ValueError: one line naming the path and the problem (no such file, no match, an
            empty or unreadable file, an unknown format).
    """
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        files, fmt = _files_of(text)
        if fmt == "npz":
            raise ValueError(f"{text}: an NPZ file is not a table; use jaxvi fit, which reads it")
        refuse_dialect_off_csv(fmt, csv, text)
        header = header_after_bom(files[0]) if fmt == "csv" else None
        source_ = Source(text, fmt, tuple(files), header=header, csv=csv or CsvDialect())
        return _describe(con, source_)
    refuse_dialect_off_csv("frame", csv, "an in-memory table")
    frame = _frame(source)
    if frame is None:
        raise TypeError(
            "source must be a path, a glob, a folder, a pandas or polars DataFrame, an Arrow "
            f"table or a DuckDB relation; got {type(source).__name__}"
        )
    con.register(_VIEW, frame)
    label = f"{type(source).__module__.split('.')[0]} table"
    return _describe(con, Source(label, "frame", frame=frame))
