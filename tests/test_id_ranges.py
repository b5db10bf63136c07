"""Parquet sorted by id is read a range of ids at a time (``jaxvi._tables.id_ranges``): the
rows are those of one query over the whole input, in the same order, and ranges are used only
where the files' own statistics show that the ids are sorted."""

from __future__ import annotations

import itertools
from typing import ClassVar
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxvi._results.table_fit as table_fit_module
import jaxvi._tables.id_ranges as id_ranges_module
import jaxvi._tables.query_progress as query_progress_module
from jaxvi import fit_table
from jaxvi._results.table_fit import TableFit
from jaxvi._tables.statistics import statistics_queries

WHOLE = 1 << 60  # rows per range so large that every input is read by one query


def _sorted_long(sizes: list[int], seed: int = 0, first: int = -50) -> pa.Table:
    """Datasets of ``sizes`` points with ids ``first, first + 1, ...``, rows sorted by id."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(first, first + len(sizes)), sizes)
    x = (rng.exponential(size=len(sizes)).repeat(sizes) + rng.standard_normal(ids.size)).astype(
        np.float32
    )
    return pa.table({"dataset_id": ids, "x": x})


def _fit(source, range_rows: int, **kw) -> pa.Table:
    with mock.patch.object(id_ranges_module, "RANGE_ROWS", range_rows):
        return fit_table(source, lam=1.5, **kw)


def _ranges(source, range_rows: int):
    with mock.patch.object(id_ranges_module, "RANGE_ROWS", range_rows):
        with TableFit(source) as run:
            return run.layout.ranges, len(statistics_queries(run.layout))


def _assert_same_rows(got: pa.Table, want: pa.Table) -> None:
    assert got.column_names == want.column_names
    assert got["dataset_id"].to_pylist() == want["dataset_id"].to_pylist()
    assert got["n"].to_pylist() == want["n"].to_pylist()
    for name in got.column_names[2:]:
        np.testing.assert_allclose(got[name].to_numpy(), want[name].to_numpy(), rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=150),
    group_rows=st.integers(1, 60),
    range_rows=st.integers(1, 400),
    cuts=st.lists(st.integers(0, 10**6), max_size=3),
    seed=st.integers(0, 2**16),
)
def test_ranges_give_the_rows_of_one_query(
    tmp_path_factory, sizes, group_rows, range_rows, cuts, seed
):
    # Datasets straddle row groups and files; the files' names do not follow the ids.
    table = _sorted_long(sizes, seed)
    folder = tmp_path_factory.mktemp("sorted")
    edges = sorted({0, table.num_rows, *(c % table.num_rows for c in cuts)})
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        name = f"{(k * 7919) % 101:03d}.parquet"
        pq.write_table(table.slice(lo, hi - lo), folder / name, row_group_size=group_rows)
    _assert_same_rows(_fit(folder, range_rows), _fit(folder, WHOLE))


def test_a_sorted_file_is_read_by_ranges_that_start_at_row_groups(tmp_path):
    sizes = list(np.random.default_rng(3).integers(1, 10, size=1000))
    table = _sorted_long(sizes)
    path = tmp_path / "sorted.parquet"
    pq.write_table(table, path, row_group_size=100)
    ranges, queries = _ranges(path, 250)
    assert ranges is not None and ranges.rows == table.num_rows
    starts = list(ranges.starts)
    assert starts == sorted(set(starts)) and len(starts) >= table.num_rows // 300
    first_ids = set(table["dataset_id"].to_numpy()[::100].tolist())
    assert set(starts) <= first_ids  # each range begins with a row group
    assert queries == len(starts) + 1
    assert _ranges(path, WHOLE) == (None, 1)
    _assert_same_rows(_fit(path, 250), _fit(path, WHOLE))


def _write(kind: str, path, table: pa.Table) -> None:
    if kind == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=10, write_statistics=kind != "no_stats")


SORTED = _sorted_long([3, 1, 4, 1, 5, 9, 2, 6, 5, 3] * 10)
NOT_BY_RANGES = {
    "shuffled": ("parquet", SORTED.take(np.random.default_rng(0).permutation(SORTED.num_rows))),
    "text_ids": (
        "parquet",
        SORTED.set_column(0, "dataset_id", pa.array([f"d{i + 100}" for i in SORTED[0].to_numpy()])),
    ),
    "no_statistics": ("no_stats", SORTED),
    "csv": ("csv", SORTED),
    "statistics_table": (
        "parquet",
        pa.table(
            {
                "dataset_id": np.arange(100),
                "n": np.ones(100),
                "sum_x": np.ones(100),
                "sum_x2": np.ones(100),
            }
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_BY_RANGES))
def test_an_input_not_known_to_be_sorted_is_read_whole(tmp_path, case):
    kind, table = NOT_BY_RANGES[case]
    path = tmp_path / ("d.csv" if kind == "csv" else "d.parquet")
    _write(kind, path, table)
    assert _ranges(path, 20) == (None, 1)


def _sorted_path(tmp_path):
    path = tmp_path / "sorted.parquet"
    pq.write_table(SORTED, path, row_group_size=10)
    return path


def test_a_missing_id_in_a_sorted_file_is_still_named(tmp_path):
    ids = pa.array([*SORTED["dataset_id"].to_pylist()[:-1], None], pa.int64())
    path = tmp_path / "d.parquet"
    pq.write_table(SORTED.set_column(0, "dataset_id", ids), path, row_group_size=10)
    assert _ranges(path, 20) == (None, 1)  # the row group's statistics count the NULL
    with pytest.raises(ValueError, match=r"d\.parquet: column 'dataset_id' has a missing id"):
        _fit(path, 20)


class _Bar:
    made: ClassVar[list[_Bar]] = []

    def __init__(self, enabled, unit, total=None, desc="", **kw):
        self.unit, self.total, self.desc, self.n, self.closed = unit, total, desc, 0, False
        _Bar.made.append(self)

    def update(self, n=1):
        self.n += n

    def close(self):
        self.closed = True


def test_a_sorted_input_draws_one_bar_through_its_rows(tmp_path, monkeypatch):
    # Read by ranges, the first statistics come out before the input has been read: one bar
    # counts its rows. Read whole, one bar follows the query, then one counts the datasets.
    path = _sorted_path(tmp_path)
    monkeypatch.setattr(table_fit_module, "progress_bar", _Bar)
    monkeypatch.setattr(query_progress_module, "progress_bar", _Bar)
    for range_rows, units in ((20, ["rows"]), (WHOLE, ["%", "datasets"])):
        _Bar.made = []
        _fit(path, range_rows, progress=True, batch_size=16)
        assert [b.unit for b in _Bar.made] == units and all(b.closed for b in _Bar.made)
        bar = _Bar.made[-1]
        if units == ["rows"]:
            assert bar.total == bar.n == SORTED.num_rows and bar.desc == "reading " + str(path)
        else:
            assert bar.n == 100
