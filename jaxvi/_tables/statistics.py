"""Tables → statistics: one DuckDB group-by per input (or per range of ids), checked as it
streams out.

A *long* table has one row per observation: an id column and a value column, rows in any
order, a dataset's rows possibly spread over many files. One query groups it by id (Parquet
sorted by id: one query per range of ids, :mod:`jaxvi._tables.id_ranges`) and returns, per
dataset and sorted by id, ``n``, a shift (the mean) and the shifted sums in DOUBLE, by stable
methods: the mean by a compensated (Kahan) sum, ``Σ(x − x̄)²`` by Welford's
update (``var_pop``), whose relative error is about ``ε·|x̄|/sd`` (3e-12 at a mean 10⁶ sd from
zero, where ``Σx² − (Σx)²/n`` is 56% off). ``Σ(x − x̄)`` is 0 by definition.

A *statistics* table has one row per dataset: ``dataset_id, n, sum_x, sum_x2`` and optionally
``shift``, the value the sums are taken about. It is recognised by its columns.

Per-dataset λ and σ may come from columns; in a long table they must not vary within a
dataset. Every check names the dataset by its id; the checks of what comes out are in
:mod:`jaxvi._tables.checked_batches`. Nothing here imports JAX.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxvi._tables.engine import quote, run_sql
from jaxvi._tables.id_ranges import IdRanges, id_ranges
from jaxvi._tables.sources import Source

__all__ = [
    "STATS_COLUMNS",
    "Layout",
    "as_double",
    "first_text",
    "plan_statistics",
    "require_columns",
    "show",
    "statistics_queries",
]

STATS_COLUMNS = ("n", "sum_x", "sum_x2")
_INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_TEXT = {"VARCHAR"}


def _is_number(duck_type: str) -> bool:
    return (
        duck_type in _INTEGERS
        or duck_type in ("FLOAT", "DOUBLE")
        or duck_type.startswith("DECIMAL")
    )


def show(value: Any) -> str:
    """A value as the user wrote it: ``7``, ``'a'``, ``nan`` (not ``np.int64(7)``).

    Examples:
        >>> show(np.int64(7)), show("a"), show(float("nan"))
        ('7', "'a'", 'nan')
    """
    return repr(value.item() if isinstance(value, np.generic) else value)


@dataclass(frozen=True)
class Layout:
    """What the statistics query reads from a :class:`~jaxvi._tables.sources.Source`.

    Attributes:
        source: the table.
        id: the dataset id column.
        x: the value column of a long table; ``None`` for a statistics table.
        lam: the column of per-dataset λ, or ``None``.
        sigma: the column of per-dataset σ, or ``None``.
        ranges: the ranges of ids a long Parquet input sorted by id is read by, one query
            each; ``None``: one query reads it whole.
        ordered: the statistics come sorted by id; a long table's partial statistics that
            are merged elsewhere (:mod:`jaxvi._dask`) need no sort.
    """

    source: Source
    id: str
    x: str | None
    lam: str | None = None
    sigma: str | None = None
    ranges: IdRanges | None = None
    ordered: bool = True

    @property
    def label(self) -> str:
        return self.source.label


def require_columns(label: str, columns: Iterable[str], names: Iterable[str]) -> None:
    """Raise a one-line :class:`ValueError` naming the first of ``names`` not in ``columns``.

    Examples:
        >>> require_columns("t.csv", ["id", "y"], ["id", "x"])
        Traceback (most recent call last):
        ValueError: t.csv: missing column 'x' (found: id, y)
    """
    columns = list(columns)
    for name in names:
        if name not in columns:
            found = ", ".join(columns) or "none"
            raise ValueError(f"{label}: missing column {name!r} (found: {found})")


def first_text(con: Any, src: Source, id: str, column: str) -> tuple[Any, str] | None:
    """The first ``(id, text)`` of ``column`` that is no number, in id order, or ``None``."""
    sql = src.sql(
        f"SELECT {quote(id)}, {quote(column)} FROM {{src}} WHERE {quote(column)} IS NOT NULL "
        f"AND TRY_CAST({quote(column)} AS DOUBLE) IS NULL ORDER BY 1 LIMIT 1"
    )
    row = run_sql(con, sql, src.params, src.label).fetchone()
    return None if row is None else (row[0], row[1])


def _check_number_column(con: Any, src: Source, id: str, column: str) -> Source:
    """Raise unless ``column`` holds numbers; text that reads as numbers is accepted (it is
    cast), text that does not is named with its dataset. Returns the source to read."""
    kind = src.columns[column]
    if _is_number(kind):
        return src
    if kind in _TEXT:
        bad = first_text(con, src, id, column)
        if bad is not None:
            raise ValueError(
                f"{src.label}: dataset {show(bad[0])} has a non-numeric {column} = {bad[1]!r}"
            )
        return src
    if kind == "JSON":  # JSON lines whose values mix numbers with text, lists or objects
        sql = src.sql(
            f"SELECT {quote(id)}, {quote(column)} FROM {{src}} WHERE json_type({quote(column)}) "
            "NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'NULL') ORDER BY 1 LIMIT 1"
        )
        row = run_sql(con, sql, src.params, src.label).fetchone()
        if row is not None:
            raise ValueError(
                f"{src.label}: dataset {show(row[0])} has a non-numeric {column} = {row[1]}"
            )
    raise ValueError(f"{src.label}: column {column!r} holds {kind} values; need numbers")


def plan_statistics(
    con: Any,
    src: Source,
    *,
    id: str = "dataset_id",
    x: str = "x",
    lam: str | None = None,
    sigma: str | None = None,
) -> Layout:
    """Check ``src``'s columns and their types, and say how its statistics are read.

        A table without the column ``x`` but with ``n``, ``sum_x`` and ``sum_x2`` is a statistics
        table. Ids are integers or text: any other type (dates, booleans, decimals) is read as
    text. Values must be numbers: a CSV value column that
        holds text is searched for the first value that is no number, and its dataset named. A
        long Parquet input whose files say it is sorted by an integer id is read by ranges of
        ids (:mod:`jaxvi._tables.id_ranges`).

        Raises:
            ValueError: one line naming the input, the column and, where there is one, the
                dataset.
    """
    stats = x not in src.columns and all(c in src.columns for c in STATS_COLUMNS)
    numbers = [*(STATS_COLUMNS if stats else (x,)), *(c for c in (lam, sigma) if c)]
    if stats and "shift" in src.columns:
        numbers.append("shift")
    require_columns(src.label, src.columns, [id, *numbers])
    kind = src.columns[id]
    if _is_number(kind):  # 1.0 and 1 would be one dataset or two: say so instead of guessing
        if kind not in _INTEGERS:
            raise ValueError(
                f"{src.label}: column {id!r} must hold integer or string ids, not {kind} values"
            )
    elif kind not in _TEXT:
        src = src.with_type(con, id, "VARCHAR")  # an id is a label: a date's is its text
        kind = src.columns[id]
    if kind in ("HUGEINT", "UHUGEINT"):  # JSON's integers; Arrow has no 128-bit integer
        src = src.with_type(con, id, "BIGINT" if kind == "HUGEINT" else "UBIGINT")
        kind = src.columns[id]
    for column in numbers:
        src = _check_number_column(con, src, id, column)
    if stats:
        dup = run_sql(
            con,
            src.sql(
                f"SELECT {quote(id)} FROM {{src}} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1"
            ),
            src.params,
            src.label,
        ).fetchone()
        if dup is not None:
            raise ValueError(
                f"{src.label}: dataset {show(dup[0])} appears more than once in a statistics table"
            )
    ranges = None if stats or kind not in _INTEGERS else id_ranges(con, src, id)
    return Layout(src, id, None if stats else x, lam, sigma, ranges)


def as_double(column: str) -> str:
    return f"CAST({quote(column)} AS DOUBLE)"


def statistics_queries(layout: Layout) -> list[tuple[str, dict[str, Any]]]:
    """The queries of per-dataset statistics, and their parameters: one, or one per range of
    ids (:attr:`Layout.ranges`). Each gives its datasets sorted by id, and the ranges come in
    order."""
    params = layout.source.params
    if layout.ranges is None:
        return [(_statistics_sql(layout), params)]
    id_ = quote(layout.id)
    queries = []
    for low, high in layout.ranges.bounds():
        tests = {"jaxvi_low": (low, ">="), "jaxvi_high": (high, "<")}
        bound = {name: value for name, (value, _) in tests.items() if value is not None}
        where = " AND ".join(f"{id_} {tests[name][1]} ${name}" for name in bound)
        queries.append((_statistics_sql(layout, f"WHERE {where}"), {**params, **bound}))
    return queries


def _statistics_sql(layout: Layout, where: str = "") -> str:
    """The query of per-dataset statistics, sorted by id; ``where`` keeps some rows."""
    id_ = quote(layout.id)
    params = [p for p in (layout.lam, layout.sigma) if p]
    if layout.x is None:
        cols = [f"{as_double(c)} AS {c}" for c in STATS_COLUMNS]
        shift = as_double("shift") if "shift" in layout.source.columns else "0.0"
        cols.append(f"{shift} AS shift")
        cols += [f"{as_double(p)} AS {quote('p:' + p)}" for p in params]
        return layout.source.sql(
            f"SELECT {id_} AS dataset_id, {', '.join(cols)} FROM {{src}} ORDER BY 1"
        )
    x = as_double(layout.x)
    cols = [
        "count(*) AS num_rows",
        f"count({x}) AS n",
        f"favg({x}) AS shift",
        f"var_pop({x}) * count({x}) AS sum_x2",
        f"count(*) FILTER (WHERE NOT isfinite({x})) AS non_finite",
    ]
    for p in params:
        for agg in ("min", "max", "count"):
            cols.append(f"{agg}({as_double(p)}) AS {quote(agg + ':' + p)}")
    return layout.source.sql(
        f"SELECT {id_} AS dataset_id, {', '.join(cols)} FROM {{src}} {where} GROUP BY 1"
        + (" ORDER BY 1" if layout.ordered else "")
    )
