"""Statistics out of DuckDB, checked batch by batch: :func:`statistics_batches`.

Each Arrow batch of the group-by (:mod:`jaxvi._tables.statistics` plans it) becomes a
:class:`StatsBatch` of NumPy columns after its checks, every one naming the dataset by its id:
counts, non-finite values (counted by the group-by; the first is shown by a lookup in the
table), λ and σ that vary within a dataset or are not positive, and the sums of a statistics
table. A CSV column typed as a number from DuckDB's sample, with text further down, is read
again as text to name the dataset. Nothing here imports JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from jaxvi._model.params import NEED, is_positive
from jaxvi._tables.columns import numbers
from jaxvi._tables.engine import EngineError, arrow_batches, quote, run_sql
from jaxvi._tables.statistics import (
    STATS_COLUMNS,
    Layout,
    as_double,
    first_text,
    show,
    statistics_queries,
)

__all__ = ["StatsBatch", "long_batch", "statistics_batches"]


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


def _floats(batch: Any, name: str) -> np.ndarray:
    """A column as float64, NaN where missing."""
    col = batch.column(batch.schema.get_field_index(name))
    return np.asarray(numbers(col), np.float64)


class _Problems:
    """The first bad dataset of a batch, over every check."""

    def __init__(self, ids: Any, con: Any = None, layout: Layout | None = None):
        self.ids = ids
        self.con, self.layout = con, layout
        self.first: tuple[int, Callable[[], str]] | None = None

    def add(self, bad: np.ndarray, message: Callable[[int], str]) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            if self.first is None or i < self.first[0]:
                self.first = (i, lambda: message(i))

    def dataset(self, i: int) -> str:
        return f"dataset {show(self.ids[i].as_py())}"

    def missing(self, i: int, column: str) -> str:
        """``dataset <id> has a missing <column>``, and for a glob or folder the file its row
        comes from: a file without the column is the usual cause."""
        words = f"{self.dataset(i)} has a missing {column}"
        if self.layout is None:
            return words
        src, id_ = self.layout.source, quote(self.layout.id)
        condition = f"{id_} = $id AND {quote(column)} IS NULL"
        return words + src.where_in_files(self.con, condition, {"id": self.ids[i].as_py()}, column)

    def raise_first(self, label: str) -> None:
        if self.first is not None:
            raise ValueError(f"{label}: {self.first[1]()}")


def _param(batch: Any, name: str, problems: _Problems, long: bool) -> np.ndarray:
    """A per-dataset λ or σ column, checked: given, one value per dataset, positive."""
    if long:
        low, high = _floats(batch, f"min:{name}"), _floats(batch, f"max:{name}")
        count = numbers(batch.column(batch.schema.get_field_index(f"count:{name}")))
        rows = numbers(batch.column(batch.schema.get_field_index("num_rows")))
        problems.add(count < rows, lambda i: problems.missing(i, name))
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


def _first_non_finite(con: Any, layout: Layout, dataset: Any) -> float:
    """A NaN or inf value of ``dataset``, which the group-by counted, to show in its error
    message (one scan of the table, on the error path only)."""
    x, id_ = as_double(layout.x or ""), quote(layout.id)
    src = layout.source
    sql = src.sql(f"SELECT first({x}) FROM {{src}} WHERE {id_} = $id AND NOT isfinite({x})")
    return run_sql(con, sql, {**src.params, "id": dataset}, src.label).fetchone()[0]


def long_batch(con: Any, layout: Layout, batch: Any) -> StatsBatch:
    """A batch of the group-by of a long table (its columns as
    :func:`~jaxvi._tables.statistics.statistics_queries` gives them), checked: a dataset with a
    missing or non-finite value (shown by a lookup on ``con``), or a λ or σ column that is
    missing, varies or is not positive, raises a one-line :class:`ValueError`."""
    ids = batch.column(0)
    p = _Problems(ids, con, layout)
    n = _floats(batch, "n")
    rows = _floats(batch, "num_rows")
    shift, sum_x2 = _floats(batch, "shift"), _floats(batch, "sum_x2")
    x = layout.x or ""
    p.add(n < rows, lambda i: p.missing(i, x))
    non_finite = _floats(batch, "non_finite")

    def says_non_finite(i: int) -> str:
        value = show(_first_non_finite(con, layout, ids[i].as_py()))
        count = int(non_finite[i])
        words = f"a non-finite {x} = {value}"
        if count > 1:
            words = f"{count} non-finite {x} values (the first: {value})"
        return f"{p.dataset(i)} has {words}"

    p.add(non_finite > 0, says_non_finite)
    # Finite values so large that Σ(x − x̄)² overflows come out of Welford's update as −inf
    # or NaN; the sum is +inf, which fits them with an ELBO of −inf.
    sum_x2 = np.where(sum_x2 >= 0, sum_x2, np.inf)
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


def statistics_batches(con: Any, layout: Layout, rows: int, *, raw: bool = False) -> Iterator[Any]:
    """The statistics of every dataset, sorted by id, in batches of at most ``rows``.

    Only a batch at a time leaves DuckDB, so memory is bounded however many datasets there
    are; DuckDB spills its group-by and sort to disk past its memory limit, and reads Parquet
    sorted by id a range of ids at a time (:attr:`Layout.ranges`). Each batch is
    checked before it is yielded. With ``raw``, a long table's batches are yielded as the
    query's Arrow record batches (after the same checks): partial statistics that merge
    exactly (:mod:`jaxvi._dask.merge`).

    Raises:
        ValueError: one line naming the input and the first bad dataset of the batch (a
            missing id, value, λ or σ; a NaN or inf value; λ or σ that varies within a
            dataset or is not positive; statistics no data can have), or no data rows.
    """
    src = layout.source
    seen = 0
    side = src.side_connection(con)  # for lookups while the statistics stream out of con
    try:
        for batch in arrow_batches(con, statistics_queries(layout), src.label, rows):
            if batch.column(0).null_count:
                where = src.where_in_files(side, f"{quote(layout.id)} IS NULL", {}, layout.id)
                raise ValueError(f"{src.label}: column {layout.id!r} has a missing id{where}")
            seen += batch.num_rows
            if layout.x is None:
                yield _stats_batch(layout, batch)
            else:
                checked = long_batch(side, layout, batch)
                yield batch if raw else checked
    except EngineError as err:
        # A CSV or JSON reader types its columns from a sample of rows; a later row that does
        # not fit stops the query. Ids that turn out to be text are read as text; a value
        # that is no number is named with its dataset.
        if err.column is None or seen or err.column not in src.columns:
            raise
        text_src = src.with_types(con, {err.column: "VARCHAR"})
        if err.column == layout.id:
            yield from statistics_batches(con, replace(layout, source=text_src), rows, raw=raw)
            return
        bad = first_text(side, text_src, layout.id, err.column)
        if bad is None:
            raise
        raise ValueError(
            f"{src.label}: dataset {show(bad[0])} has a non-numeric {err.column} = {bad[1]!r}"
        ) from None
    finally:
        side.close()
    if not seen:
        raise ValueError(f"{src.label}: no data rows")
