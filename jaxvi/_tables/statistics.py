"""Tables → statistics: one DuckDB group-by per input, checked as it streams out.

A *long* table has one row per observation: an id column and a value column, rows in any
order, a dataset's rows possibly spread over many files. One query groups it by id and
returns, per dataset and sorted by id, ``n``, a shift (the mean) and the shifted sums in
DOUBLE, by stable methods: the mean by a compensated (Kahan) sum, ``Σ(x − x̄)²`` by Welford's
update (``var_pop``), whose relative error is about ``ε·|x̄|/sd`` (3e-12 at a mean 10⁶ sd from
zero, where ``Σx² − (Σx)²/n`` is 56% off). ``Σ(x − x̄)`` is 0 by definition.

A *statistics* table has one row per dataset: ``dataset_id, n, sum_x, sum_x2`` and optionally
``shift``, the value the sums are taken about. It is recognised by its columns.

Per-dataset λ and σ may come from columns; in a long table they must not vary within a
dataset. Every check names the dataset by its id. Nothing here imports JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from jaxvi._model.params import NEED, is_positive
from jaxvi._tables.engine import EngineError, arrow_batches, quote, run_sql
from jaxvi._tables.sources import Source

__all__ = ["STATS_COLUMNS", "Layout", "StatsBatch", "plan_statistics", "statistics_batches"]

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
    """

    source: Source
    id: str
    x: str | None
    lam: str | None = None
    sigma: str | None = None

    @property
    def label(self) -> str:
        return self.source.label


@dataclass(frozen=True)
class StatsBatch:
    """Statistics of consecutive datasets (by id), as they leave DuckDB; arrays ``(D,)``.

    Attributes:
        ids: Arrow array of the ids (int64 or string), sorted.
        n, sum_x, sum_x2, shift: float64; the sums are of ``x − shift``.
        lam, sigma: float64 per-dataset parameters, or ``None`` when not taken from columns.
    """

    ids: Any
    n: np.ndarray
    sum_x: np.ndarray
    sum_x2: np.ndarray
    shift: np.ndarray
    lam: np.ndarray | None = None
    sigma: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.n)


def _require(src: Source, names: list[str]) -> None:
    for name in names:
        if name not in src.columns:
            found = ", ".join(src.columns) or "none"
            raise ValueError(f"{src.label}: missing column {name!r} (found: {found})")


def _first_text(con: Any, src: Source, id: str, column: str) -> tuple[Any, str] | None:
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
        bad = _first_text(con, src, id, column)
        if bad is not None:
            raise ValueError(
                f"{src.label}: dataset {show(bad[0])} has a non-numeric {column} = {bad[1]!r}"
            )
        return src
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
    table. Ids must be integers or text. Values must be numbers: a CSV value column that
    holds text is searched for the first value that is no number, and its dataset named.

    Raises:
        ValueError: one line naming the input, the column and, where there is one, the
            dataset.
    """
    stats = x not in src.columns and all(c in src.columns for c in STATS_COLUMNS)
    numbers = [*(STATS_COLUMNS if stats else (x,)), *(c for c in (lam, sigma) if c)]
    if stats and "shift" in src.columns:
        numbers.append("shift")
    _require(src, [id, *numbers])
    kind = src.columns[id]
    if kind not in _INTEGERS and kind not in _TEXT:
        raise ValueError(
            f"{src.label}: column {id!r} must hold integer or string ids, not {kind} values"
        )
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
    return Layout(src, id, None if stats else x, lam, sigma)


def _double(column: str) -> str:
    return f"CAST({quote(column)} AS DOUBLE)"


def statistics_sql(layout: Layout) -> str:
    """The one query: per-dataset statistics, sorted by id."""
    id_ = quote(layout.id)
    params = [p for p in (layout.lam, layout.sigma) if p]
    if layout.x is None:
        cols = [f"{_double(c)} AS {c}" for c in STATS_COLUMNS]
        shift = _double("shift") if "shift" in layout.source.columns else "0.0"
        cols.append(f"{shift} AS shift")
        cols += [f"{_double(p)} AS {quote('p:' + p)}" for p in params]
        return layout.source.sql(
            f"SELECT {id_} AS dataset_id, {', '.join(cols)} FROM {{src}} ORDER BY 1"
        )
    x = _double(layout.x)
    cols = [
        "count(*) AS num_rows",
        f"count({x}) AS n",
        f"favg({x}) AS shift",
        f"var_pop({x}) * count({x}) AS sum_x2",
    ]
    for p in params:
        for agg in ("min", "max", "count"):
            cols.append(f"{agg}({_double(p)}) AS {quote(agg + ':' + p)}")
    return layout.source.sql(
        f"SELECT {id_} AS dataset_id, {', '.join(cols)} FROM {{src}} GROUP BY 1 ORDER BY 1"
    )


def _floats(batch: Any, name: str) -> np.ndarray:
    """A column as float64, NaN where missing."""
    col = batch.column(batch.schema.get_field_index(name))
    return np.asarray(col.to_numpy(zero_copy_only=False), np.float64)


class _Problems:
    """The first bad dataset of a batch, over every check."""

    def __init__(self, ids: Any):
        self.ids = ids
        self.first: tuple[int, Callable[[], str]] | None = None

    def add(self, bad: np.ndarray, message: Callable[[int], str]) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            if self.first is None or i < self.first[0]:
                self.first = (i, lambda: message(i))

    def dataset(self, i: int) -> str:
        return f"dataset {show(self.ids[i].as_py())}"

    def raise_first(self, label: str) -> None:
        if self.first is not None:
            raise ValueError(f"{label}: {self.first[1]()}")


def _param(batch: Any, name: str, problems: _Problems, long: bool) -> np.ndarray:
    """A per-dataset λ or σ column, checked: given, one value per dataset, positive."""
    if long:
        low, high = _floats(batch, f"min:{name}"), _floats(batch, f"max:{name}")
        count = batch.column(batch.schema.get_field_index(f"count:{name}")).to_numpy()
        rows = batch.column(batch.schema.get_field_index("num_rows")).to_numpy()
        problems.add(count < rows, lambda i: f"{problems.dataset(i)} has a missing {name}")
        problems.add(
            low != high,
            lambda i: (
                f"{problems.dataset(i)} has more than one {name} "
                f"({show(low[i])} and {show(high[i])})"
            ),
        )
    else:
        low = _floats(batch, f"p:{name}")
    problems.add(
        ~is_positive(low),
        lambda i: f"{problems.dataset(i)} has {name} = {show(low[i])}, which {NEED}",
    )
    return low


def _says(p: _Problems, what: str, values: np.ndarray, i: int) -> str:
    """``dataset <id> <what> <value i>``: a problem's words."""
    return f"{p.dataset(i)} {what} {show(values[i])}"


def _check_stats(
    n: np.ndarray, sum_x: np.ndarray, sum_x2: np.ndarray, shift: np.ndarray, p: _Problems
) -> None:
    fields = {"n": n, "sum_x": sum_x, "sum_x2": sum_x2, "shift": shift}
    for name, f in fields.items():
        p.add(~np.isfinite(f), partial(_says, p, f"has {name} =", f))
    p.add(
        (n < 0) | (n != np.round(n)),
        lambda i: f"{p.dataset(i)} has n = {show(n[i])}; need an integer >= 0",
    )
    p.add(sum_x2 < 0, lambda i: f"{p.dataset(i)} has sum_x2 = {show(sum_x2[i])} < 0")
    # Σ(x − c)² ≥ (Σ(x − c))²/n for any data; allow for the rounding of sums made elsewhere.
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(n > 0, sum_x**2 / n, 0.0)
    p.add(
        (sum_x2 < floor * (1 - 1e-4)) | ((n == 0) & (sum_x != 0)),
        lambda i: (
            f"{p.dataset(i)} has sum_x = {show(sum_x[i])} and sum_x2 = "
            f"{show(sum_x2[i])} with n = {show(n[i])}: no data have these sums (need sum_x2 >= "
            "sum_x**2 / n)"
        ),
    )


def _bad_value(con: Any, layout: Layout, dataset: Any) -> Any:
    """The first missing or non-finite value of ``dataset``; ``None`` if it has none (its
    sums overflowed from finite values)."""
    x = _double(layout.x or "")
    src = layout.source
    sql = src.sql(
        f"SELECT {x} FROM {{src}} WHERE {quote(layout.id)} = $id AND ({x} IS NULL OR NOT "
        f"isfinite({x})) LIMIT 1"
    )
    row = run_sql(con, sql, {**src.params, "id": dataset}, src.label).fetchone()
    return None if row is None else row[0]


def _long_batch(con: Any, layout: Layout, batch: Any) -> StatsBatch:
    ids = batch.column(0)
    p = _Problems(ids)
    n = _floats(batch, "n")
    rows = _floats(batch, "num_rows")
    shift, sum_x2 = _floats(batch, "shift"), _floats(batch, "sum_x2")
    x = layout.x
    p.add(n < rows, lambda i: f"{p.dataset(i)} has a missing {x}")
    # A NaN or inf makes its dataset's mean or spread non-finite: the values are looked at
    # only then. Sums that overflowed from finite values are no error (their row is inf/NaN).
    suspect = np.flatnonzero(~(np.isfinite(shift) & np.isfinite(sum_x2)) & (n == rows))
    for i in suspect:
        value = _bad_value(con, layout, ids[int(i)].as_py())
        if value is not None:
            bad = np.zeros(len(n), bool)
            bad[i] = True
            p.add(bad, partial(_says, p, f"has a non-finite {x} =", np.full(len(n), value)))
            break
    lam = _param(batch, layout.lam, p, True) if layout.lam else None
    sigma = _param(batch, layout.sigma, p, True) if layout.sigma else None
    p.raise_first(layout.label)
    return StatsBatch(ids, n, np.zeros_like(n), sum_x2, shift, lam, sigma)


def _stats_batch(layout: Layout, batch: Any) -> StatsBatch:
    ids = batch.column(0)
    p = _Problems(ids)
    n, sum_x, sum_x2, shift = (_floats(batch, c) for c in (*STATS_COLUMNS, "shift"))
    _check_stats(n, sum_x, sum_x2, shift, p)
    lam = _param(batch, layout.lam, p, False) if layout.lam else None
    sigma = _param(batch, layout.sigma, p, False) if layout.sigma else None
    p.raise_first(layout.label)
    return StatsBatch(ids, n, sum_x, sum_x2, shift, lam, sigma)


def statistics_batches(con: Any, layout: Layout, rows: int) -> Iterator[StatsBatch]:
    """The statistics of every dataset, sorted by id, in batches of at most ``rows``.

    Only a batch at a time leaves DuckDB, so memory is bounded however many datasets there
    are; DuckDB spills its group-by and sort to disk past its memory limit. Each batch is
    checked before it is yielded.

    Raises:
        ValueError: one line naming the input and the first bad dataset of the batch (a
            missing id, value, λ or σ; a NaN or inf value; λ or σ that varies within a
            dataset or is not positive; statistics no data can have), or no data rows.
    """
    src = layout.source
    seen = 0
    try:
        for batch in arrow_batches(con, statistics_sql(layout), src.params, src.label, rows):
            if batch.column(0).null_count:
                raise ValueError(f"{src.label}: column {layout.id!r} has a missing id")
            seen += batch.num_rows
            if layout.x is None:
                yield _stats_batch(layout, batch)
            else:
                yield _long_batch(con, layout, batch)
    except EngineError as err:
        # A CSV or JSON reader types its columns from a sample of rows; a later row that does
        # not fit stops the query. Ids that turn out to be text are read as text; a value
        # that is no number is named with its dataset.
        if err.column is None or seen or err.column not in src.columns:
            raise
        text_src = src.with_types(con, {err.column: "VARCHAR"})
        if err.column == layout.id:
            yield from statistics_batches(con, replace(layout, source=text_src), rows)
            return
        bad = _first_text(con, text_src, layout.id, err.column)
        if bad is None:
            raise
        raise ValueError(
            f"{src.label}: dataset {show(bad[0])} has a non-numeric {err.column} = {bad[1]!r}"
        ) from None
    if not seen:
        raise ValueError(f"{src.label}: no data rows")
