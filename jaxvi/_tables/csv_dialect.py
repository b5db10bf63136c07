"""How CSV files are read: RFC 4180's quote unless the user names another, a delimiter given or
detected, and a header that DuckDB's sniffer cannot read (a byte-order mark, then a quote),
read by Python's csv module instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CSV_BUFFER", "CsvDialect", "header_after_bom", "literal", "refuse_dialect_off_csv"]

# DuckDB's CSV reader reads this many bytes at a time per thread (its default is 16 times the
# longest line allowed, 2 MB). With 4 MB `jaxvi fit` on 10⁶ datasets of CSV peaked 70-110 MB
# lower, at the same wall time (benchmarks/files.py, round-robin, two runs).
CSV_BUFFER = 1 << 22


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class CsvDialect:
    """How CSV files are read: ``quote`` (RFC 4180's ``"`` by default), which also escapes
    itself by doubling, and ``delimiter`` (``None``: detected by DuckDB from the file)."""

    quote: str = '"'
    delimiter: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("csv_quote", self.quote), ("csv_delimiter", self.delimiter)):
            if value is None and name == "csv_delimiter":
                continue
            if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
                raise ValueError(f"{name} must be one character (not a newline), got {value!r}")
        if self.quote == self.delimiter:
            raise ValueError(f"csv_quote and csv_delimiter must differ, both are {self.quote!r}")


def header_after_bom(path: str) -> tuple[str, tuple[str, ...]] | None:
    """``(delimiter, names)`` of a CSV file that starts with a UTF-8 byte-order mark and a
    quote, read by Python's csv module; ``None`` for any other file (DuckDB reads those)."""
    import csv
    import gzip

    opener: Any = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            start = f.read(1 << 16)
    except OSError:
        return None
    if not start.startswith(b'\xef\xbb\xbf"'):
        return None
    line = start[3:].decode("utf-8", "replace")
    try:
        dialect = csv.Sniffer().sniff(line.splitlines()[0], delimiters=",;|\t")
    except (csv.Error, IndexError):
        return None
    names = next(csv.reader([line.split("\n")[0].rstrip("\r")], delimiter=dialect.delimiter))
    return dialect.delimiter, tuple(names)


def refuse_dialect_off_csv(fmt: str, csv: CsvDialect | None, label: str) -> None:
    """Refuse a CSV dialect asked of input that is not CSV (the option would do nothing)."""
    if csv is not None and csv != CsvDialect() and fmt != "csv":
        raise ValueError(f"{label}: csv_quote and csv_delimiter apply to CSV input, not {fmt}")
