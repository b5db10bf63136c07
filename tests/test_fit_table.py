"""``jaxvi.fit_table``: tables of every kind, through DuckDB, against ``jaxvi.fit``.

Each test makes its own files or frames. Results must not depend on the format, the row
order, how rows are spread over files, the batch size, or whether the table holds the values
or their statistics; bad input must fail with one line naming the dataset.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time

import duckdb
import jax
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from helpers import assert_b_close
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvi import Ragged, SuffStats, estimate_lam, fit, fit_table
from jaxvi._results.kernel import RESULT_COLUMNS
from jaxvi._results.table_fit import TableFit

LAM, SIGMA = 1.5, 0.8


def _groups(seed: int, num: int, *, mean=None, sd: float = 1.0, sizes=(1, 12)) -> list:
    rng = np.random.default_rng(seed)
    centre = rng.exponential(size=num) if mean is None else np.full(num, mean)
    return [
        (c + sd * rng.standard_normal(rng.integers(sizes[0], sizes[1] + 1))).astype(np.float32)
        for c in centre
    ]


def _long(groups: list, ids: list, *, seed: int | None = 0) -> pa.Table:
    """A long table of ``groups`` with ``ids``, rows shuffled unless ``seed`` is None."""
    col_ids = np.repeat(np.array(ids), [len(g) for g in groups])
    values = np.concatenate(groups)
    if seed is not None:
        perm = np.random.default_rng(seed).permutation(len(values))
        col_ids, values = col_ids[perm], values[perm]
    return pa.table({"dataset_id": col_ids, "x": values})


def _fit_rows(groups: list, lam=LAM, sigma=SIGMA, **kw):
    values = np.concatenate(groups)
    offsets = np.r_[0, np.cumsum([len(g) for g in groups])]
    return fit(Ragged(values, offsets), lam, sigma, **kw)


def _assert_matches_fit(table: pa.Table, groups: list, lam=LAM, sigma=SIGMA, rtol=2e-5, **kw):
    """``table``'s rows (sorted by id = the order of ``groups``) against ``fit``."""
    sol = _fit_rows(groups, lam, sigma, **kw)
    assert table.column_names == list(RESULT_COLUMNS)
    assert table["n"].to_pylist() == [len(g) for g in groups]
    for name in ("theta", "elbo", "log_evidence"):
        np.testing.assert_allclose(table[name].to_numpy(), getattr(sol, name), rtol=rtol)
    assert_b_close(table["b"].to_numpy(), sol.b, lam, rtol)
    np.testing.assert_allclose(table["kl_gap"].to_numpy(), sol.kl_gap, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(table["q_mean"].to_numpy(), 1 / sol.theta, rtol=rtol)


GROUPS = _groups(1, 60)
IDS = [f"d{i:03d}" for i in range(60)]  # sorted as text


def test_arrow_table_in_any_order_matches_fit():
    res = fit_table(_long(GROUPS, IDS), lam=LAM, sigma=SIGMA)
    assert res["dataset_id"].to_pylist() == IDS
    _assert_matches_fit(res, GROUPS)
    meta = res.schema.metadata
    assert meta[b"lam"] == b"1.5" and meta[b"sigma"] == b"0.8" and meta[b"dtype"] == b"float32"
    assert meta[b"input"] == b"pyarrow table" and meta[b"jaxvi_version"]


def test_integer_ids_sort_as_numbers():
    ids = [10 * i for i in range(60)][::-1]  # 590, 580, ... as the groups' ids
    res = fit_table(_long(GROUPS, ids), lam=LAM, sigma=SIGMA)
    assert res["dataset_id"].to_pylist() == sorted(ids)
    assert res.schema.field("dataset_id").type == pa.int64()
    _assert_matches_fit(res, GROUPS[::-1])


KINDS = ["parquet", "csv_semicolon", "tsv", "jsonl", "pandas", "polars", "polars_lazy"]


@pytest.mark.parametrize("kind", [*KINDS, "arrow_reader", "duckdb_relation"])
def test_every_format_and_frame_gives_the_same_rows(tmp_path, kind):
    table = _long(GROUPS, IDS)
    if kind == "parquet":
        source = tmp_path / "d.parquet"
        pq.write_table(table, source)
    elif kind in ("csv_semicolon", "tsv"):
        source = tmp_path / ("d.csv" if kind == "csv_semicolon" else "d.tsv")
        opts = pcsv.WriteOptions(delimiter=";" if kind == "csv_semicolon" else "\t")
        pcsv.write_csv(table, source, write_options=opts)
    elif kind == "jsonl":
        source = tmp_path / "d.jsonl"
        rows = table.to_pylist()
        source.write_text("".join(f'{{"dataset_id": "{r["dataset_id"]}", "x": {r["x"]!r}}}\n'
                                  for r in rows))  # fmt: skip
    elif kind == "pandas":
        source = table.to_pandas()
        assert isinstance(source, pd.DataFrame)
    elif kind == "polars":
        source = pl.from_arrow(table)
    elif kind == "polars_lazy":
        source = pl.from_arrow(table).lazy().filter(pl.col("x").is_not_null())
    elif kind == "arrow_reader":
        source = table.to_reader(max_chunksize=50)
    else:
        source = duckdb.connect().from_arrow(table)  # a relation of its own connection
    res = fit_table(source, lam=LAM, sigma=SIGMA)
    assert res["dataset_id"].to_pylist() == IDS
    _assert_matches_fit(res, GROUPS)


def test_rows_of_a_dataset_spread_over_files_of_a_glob_and_a_folder(tmp_path):
    table = _long(GROUPS, IDS)
    folder = tmp_path / "runs"
    (folder / "part").mkdir(parents=True)
    for k, lo in enumerate(range(0, table.num_rows, 97)):
        where = folder / "part" if k % 2 else folder
        pq.write_table(table.slice(lo, 97), where / f"p{k}.parquet")
    (folder / "_SUCCESS").write_text("")  # markers and hidden files are skipped
    (folder / ".p0.parquet.tmp").write_text("partial")
    for source in (folder, str(folder / "**" / "*.parquet")):
        res = fit_table(source, lam=LAM, sigma=SIGMA)
        assert res["dataset_id"].to_pylist() == IDS
        _assert_matches_fit(res, GROUPS)


def test_lam_from_the_folder_names_of_a_hive_partitioned_study(tmp_path):
    # runs/lam=0.5/part.parquet: DuckDB reads the folder name as a column.
    for lam, lo in ((0.5, 0), (2.0, 30)):
        (tmp_path / f"lam={lam}").mkdir()
        part = _long(GROUPS[lo : lo + 30], IDS[lo : lo + 30])
        pq.write_table(part, tmp_path / f"lam={lam}" / "part.parquet")
    res = fit_table(tmp_path, lam="lam", sigma=SIGMA)
    assert res["dataset_id"].to_pylist() == IDS
    _assert_matches_fit(res.slice(0, 30), GROUPS[:30], lam=0.5)
    _assert_matches_fit(res.slice(30), GROUPS[30:], lam=2.0)


def test_statistics_table_gives_the_rows_of_its_data():
    shift = np.array([g[0] for g in GROUPS], np.float64)
    stats = pa.table(
        {
            "dataset_id": IDS[::-1],
            "n": [len(g) for g in GROUPS][::-1],
            "sum_x": [float((g - s).sum()) for g, s in zip(GROUPS, shift, strict=True)][::-1],
            "sum_x2": [float(((g - s) ** 2).sum()) for g, s in zip(GROUPS, shift, strict=True)][
                ::-1
            ],
            "shift": shift[::-1],
        }
    )
    res = fit_table(stats, lam=LAM, sigma=SIGMA)
    assert res["dataset_id"].to_pylist() == IDS
    _assert_matches_fit(res, GROUPS)


def test_batches_of_any_size_give_the_same_rows():
    table = _long(GROUPS, IDS)
    whole = fit_table(table, lam=LAM, sigma=SIGMA)
    small = fit_table(table, lam=LAM, sigma=SIGMA, batch_size=7)
    assert small["dataset_id"].to_pylist() == IDS
    for name in RESULT_COLUMNS[1:]:
        np.testing.assert_array_equal(small[name].to_numpy(), whole[name].to_numpy(), name)


def test_per_dataset_lam_and_sigma_columns_follow_their_dataset():
    rng = np.random.default_rng(2)
    lam = rng.uniform(0.5, 3.0, len(GROUPS))
    sigma = rng.uniform(0.5, 2.0, len(GROUPS))
    table = _long(GROUPS, IDS, seed=None)
    sizes = [len(g) for g in GROUPS]
    table = table.append_column("prior", pa.array(np.repeat(lam, sizes)))
    table = table.append_column("noise", pa.array(np.repeat(sigma, sizes).astype(np.float32)))
    res = fit_table(table, lam="prior", sigma="noise")
    _assert_matches_fit(res, GROUPS, lam.astype(np.float32), sigma.astype(np.float32))
    assert res.schema.metadata[b"lam"] == b"column prior"


def test_lam_estimate_is_the_type_ii_ml_lam_of_every_dataset():
    groups = _groups(3, 400, sizes=(1, 20))
    res = fit_table(_long(groups, list(range(400))), lam=estimate_lam, sigma=SIGMA)
    values = np.concatenate(groups)
    offsets = np.r_[0, np.cumsum([len(g) for g in groups])]
    n = np.diff(offsets).astype(np.float32)
    sums = np.add.reduceat(values.astype(np.float64), offsets[:-1])
    sums2 = np.add.reduceat(values.astype(np.float64) ** 2, offsets[:-1])
    want = float(estimate_lam(SuffStats(n, sums.astype(np.float32), sums2.astype(np.float32)),
                              sigma=SIGMA))  # fmt: skip
    meta = res.schema.metadata
    assert meta[b"lam_estimated"] == b"true"
    lam_hat = float(meta[b"lam"])
    assert lam_hat == pytest.approx(want, rel=1e-4)
    _assert_matches_fit(res, groups, lam_hat)


@pytest.mark.parametrize("mean", [1e3, -1e4, 1e6])
def test_data_far_from_zero_keep_their_spread(mean):
    groups = _groups(4, 20, mean=mean, sizes=(2, 3000))
    groups = [g.astype(np.float64) for g in groups]
    res = fit_table(_long(groups, list(range(20))), lam=LAM, sigma=SIGMA)
    # The reference: float64 sums about each dataset's mean, then fit's kernels.
    sol = _fit_rows(groups, dtype=np.float32)
    n = np.array([len(g) for g in groups], float)
    centred = np.array([((g - g.mean()) ** 2).sum() for g in groups])
    np.testing.assert_allclose(res["theta"].to_numpy(), sol.theta, rtol=2e-6)
    np.testing.assert_allclose(res["b"].to_numpy(), sol.b, rtol=2e-6)
    # log p's spread term −Σ(x − x̄)²/(2σ²) must survive: compare the log evidence with the
    # one computed from the exact centred sums (kl_gap is a function of t alone).
    lp = res["log_evidence"].to_numpy().astype(np.float64)
    lp_fit = sol.log_evidence.astype(np.float64)
    scale = np.abs(lp_fit) + centred / (2 * SIGMA**2) + n
    assert (np.abs(lp - lp_fit) <= 4e-6 * scale).all()


@pytest.mark.float64
@pytest.mark.parametrize("mean", [0.0, 1e3, 1e6])
def test_float64_matches_fit_including_far_means(mean):
    groups = [g.astype(np.float64) for g in _groups(5, 30, mean=mean, sizes=(1, 2000))]
    res = fit_table(_long(groups, list(range(30))), lam=LAM, sigma=SIGMA, dtype=np.float64)
    sol = _fit_rows(groups)
    assert res["theta"].type == pa.float64()
    # DuckDB's Welford sums lose about ε·|mean|/sd relative in Σ(x − x̄)²: 1e-10 at 10⁶ sd.
    rtol = 1e-13 if mean == 0 else 1e-12 if mean == 1e3 else 3e-10
    for name in ("b", "theta", "elbo", "log_evidence", "kl_gap"):
        np.testing.assert_allclose(
            res[name].to_numpy(), getattr(sol, name), rtol=rtol, err_msg=name
        )


@pytest.mark.float64
def test_sums_that_overflow_from_finite_values_are_no_error_and_keep_their_sign():
    # DuckDB's var_pop gives -inf for these two values; Σ(x − x̄)² is +inf, so the ELBO and
    # the evidence are -inf, not +inf.
    table = pa.table({"dataset_id": [1, 1, 2], "x": [1e308, -1e308, 1.0]})
    res = fit_table(table, lam=LAM, sigma=SIGMA, dtype=np.float64)
    assert res["elbo"][0].as_py() == res["log_evidence"][0].as_py() == -np.inf
    np.testing.assert_allclose(res["elbo"][1].as_py(), _fit_rows([np.ones(1)]).elbo[0])


@pytest.mark.float64
def test_only_a_dataset_with_a_nan_is_looked_up_not_those_whose_sums_overflowed(monkeypatch):
    # Datasets 1 and 2 overflow from finite values (no error: their means and spreads are not
    # finite, but the group-by counts no NaN or inf in them); dataset 3 holds a NaN, and only
    # it is looked up, for the value its message shows.
    from jaxvi._tables import checked_batches

    run_sql, lookups = checked_batches.run_sql, []

    def counted(con, sql, params, label):
        lookups.append("isfinite" in sql)
        return run_sql(con, sql, params, label)

    monkeypatch.setattr(checked_batches, "run_sql", counted)
    table = pa.table(
        {"dataset_id": [1, 1, 2, 2, 3, 3], "x": [1e308, -1e308, -1e308, 1e308, 1.0, np.nan]}
    )
    with pytest.raises(ValueError, match=r"dataset 3 has a non-finite x = nan$"):
        fit_table(table, dtype=np.float64)
    assert sum(lookups) == 1
    assert fit_table(table.slice(0, 4), dtype=np.float64).num_rows == 2
    assert sum(lookups) == 1


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), cuts=st.lists(st.integers(1, 400), min_size=0, max_size=4))
def test_row_order_and_files_change_nothing_but_rounding(tmp_path_factory, seed, cuts):
    table = _long(GROUPS, IDS, seed=seed)
    folder = tmp_path_factory.mktemp("parts")
    edges = sorted({0, table.num_rows, *(c % table.num_rows for c in cuts)})
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        pq.write_table(table.slice(lo, hi - lo), folder / f"{k}.parquet")
    res = fit_table(folder, lam=LAM, sigma=SIGMA)
    assert res["dataset_id"].to_pylist() == IDS
    _assert_matches_fit(res, GROUPS)


def test_spills_to_disk_below_the_group_by_state(tmp_path, monkeypatch):
    # 300,000 datasets in random order: DuckDB's group-by state (ids, counts, means, Welford
    # sums) and the sort need more than 30 MB. The query spills instead of failing, and
    # gives every dataset; forbidden to spill, the same query runs out of memory. The spill
    # folder, <tmp>/jaxvi_duckdb/<pid>, is made from a bare temporary folder.
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    num = 300_000
    rng = np.random.default_rng(6)
    ids = rng.permutation(np.repeat(np.arange(num), 2))
    x = rng.normal(size=ids.size).astype(np.float32)
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"dataset_id": ids, "x": x}), path)
    res = fit_table(path, memory_limit="30MB", threads=1)
    assert res.num_rows == num
    assert res["dataset_id"].to_numpy().tolist() == list(range(num))
    assert (res["n"].to_numpy() == 2).all()
    order = np.argsort(ids, kind="stable")
    pairs = x[order].reshape(num, 2).astype(np.float64)
    np.testing.assert_allclose(res["b"].to_numpy(), pairs.sum(1) - 1.0, rtol=1e-5, atol=1e-5)
    assert not [p for p in (tmp_path / "tmp").rglob("*") if p.is_file()], "spill files left"
    run = TableFit(path, memory_limit="30MB", threads=1)
    run.con.execute("SET max_temp_directory_size = '0KB'")
    with pytest.raises(ValueError, match=r"d\.parquet: .*(offload|Out of Memory|allocate)"):
        list(run.batches())


BAD = {
    "missing_column": (pa.table({"dataset_id": [1], "y": [2.0]}), {}, "missing column 'x'"),
    "text_value": (
        pa.table({"dataset_id": [1, 9], "x": ["2.0", "two"]}),
        {},
        "dataset 9 has a non-numeric x = 'two'",
    ),
    "wrong_type": (
        pa.table({"dataset_id": [1], "x": [True]}),
        {},
        "column 'x' holds BOOLEAN values; need numbers",
    ),
    "float_ids": (
        pa.table({"dataset_id": [1.5], "x": [2.0]}),
        {},
        "column 'dataset_id' must hold integer or string ids, not DOUBLE values",
    ),
    "nan": (
        pa.table({"dataset_id": ["a", "b", "b"], "x": [2.0, 1.0, float("nan")]}),
        {},
        "dataset 'b' has a non-finite x = nan",
    ),
    "inf": (
        pa.table({"dataset_id": [3, 7], "x": [1.0, float("-inf")]}),
        {},
        "dataset 7 has a non-finite x = -inf",
    ),
    "several_non_finite": (
        pa.table({"dataset_id": ["a", "b", "b", "b"], "x": [1.0, float("nan"), 2.0, float("inf")]}),
        {},
        "dataset 'b' has 2 non-finite x values (the first: nan)",
    ),
    "missing_value": (
        pa.table({"dataset_id": [3, 3, 4], "x": [1.0, None, 2.0]}),
        {},
        "dataset 3 has a missing x",
    ),
    "missing_id": (
        pa.table({"dataset_id": [3, None], "x": [1.0, 2.0]}),
        {},
        "column 'dataset_id' has a missing id",
    ),
    "no_rows": (
        pa.table({"dataset_id": pa.array([], pa.int64()), "x": pa.array([], pa.float64())}),
        {},
        "no data rows",
    ),
    "duplicate_stats": (
        pa.table({"dataset_id": [4, 4], "n": [1, 2], "sum_x": [0.0, 0.0], "sum_x2": [0.0, 0.0]}),
        {},
        "dataset 4 appears more than once in a statistics table",
    ),
    "impossible_stats": (
        pa.table({"dataset_id": ["k"], "n": [2], "sum_x": [1.0], "sum_x2": [0.1]}),
        {},
        "dataset 'k' has sum_x = 1.0 and sum_x2 = 0.1 with n = 2.0",
    ),
    "negative_n": (
        pa.table({"dataset_id": [5], "n": [-1], "sum_x": [0.0], "sum_x2": [0.0]}),
        {},
        "dataset 5 has n = -1.0; need an integer >= 0",
    ),
    "lam_varies": (
        pa.table({"dataset_id": [1, 2, 2], "x": [1.0, 2.0, 3.0], "l": [1.0, 0.5, 2.0]}),
        {"lam": "l"},
        "dataset 2 has more than one l (0.5 and 2.0)",
    ),
    "lam_not_positive": (
        pa.table({"dataset_id": [1, 2], "x": [1.0, 2.0], "l": [1.0, -3.0]}),
        {"lam": "l"},
        "dataset 2 has l = -3.0, which must be a positive finite number",
    ),
    "lam_zero": (pa.table({"dataset_id": [1], "x": [1.0]}), {"lam": 0.0}, "lam must be a"),
    "sigma_missing_column": (
        pa.table({"dataset_id": [1], "x": [1.0]}),
        {"sigma": "s"},
        "missing column 's'",
    ),
    "memory_limit_unit": (
        pa.table({"dataset_id": [1], "x": [1.0]}),
        {"memory_limit": "2XB"},
        "memory_limit '2XB': Unknown unit for memory",
    ),
    "memory_limit_too_small": (
        pa.table({"dataset_id": [1, 2], "x": [1.0, 2.0]}),
        {"memory_limit": "1KB"},
        "DuckDB ran out of memory (",
    ),
    "threads_zero": (
        pa.table({"dataset_id": [1], "x": [1.0]}),
        {"threads": 0},
        "threads must be a positive integer, got 0",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_dataset_or_column(case):
    table, kw, message = BAD[case]
    with pytest.raises(ValueError) as info:
        fit_table(table, **kw)
    text = str(info.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize(
    "source",
    [np.zeros(3), {"dataset_id": [1], "x": [1.0]}, [1.0], pd.Series([1.0]), pl.Series([1.0])],
    ids=["ndarray", "dict", "list", "pandas_series", "polars_series"],
)
def test_what_is_no_table_is_a_type_error(source):
    with pytest.raises(TypeError, match=r"^source must be a path, a glob, a folder, .* got "):
        fit_table(source)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"nothing\*\.parquet: no files match"):
        fit_table(str(tmp_path / "nothing*.parquet"))
    with pytest.raises(ValueError, match="folder holds no Parquet, CSV or JSON file"):
        fit_table(tmp_path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: file is empty"):
        fit_table(tmp_path / "empty.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet: not a readable Parquet file"):
        fit_table(tmp_path / "bad.parquet")
    (tmp_path / "d.txt").write_text("dataset_id,x\n1,2\n")
    with pytest.raises(ValueError, match="unknown table format"):
        fit_table(tmp_path / "d.txt")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_of_a_glob_without_a_column_is_named(tmp_path, fmt):
    # Files of a glob are matched by name; DuckDB fills a column a file lacks with NULL.
    # Without naming the file, "dataset 3 has a missing x" sends the user to the wrong place.
    def write(name, table):
        path = tmp_path / f"{name}.{fmt}"
        (pq.write_table if fmt == "parquet" else pcsv.write_csv)(table, path)
        return path

    write("a", pa.table({"dataset_id": [1, 2], "x": [1.0, 2.0], "lam": [1.0, 1.0]}))
    b = write("b", pa.table({"dataset_id": [3, 4], "y": [1.0, 2.0], "lam": [1.0, 1.0]}))
    glob = str(tmp_path / f"*.{fmt}")
    with pytest.raises(ValueError) as info:
        fit_table(glob)
    assert str(info.value) == f"{glob}: dataset 3 has a missing x (file {b} has no column 'x')"
    write("b", pa.table({"dataset_id": [3, 4], "x": [1.0, 2.0]}))
    with pytest.raises(ValueError, match=rf"dataset 3 has a missing lam \(file .*b\.{fmt} has"):
        fit_table(glob, lam="lam")
    write("b", pa.table({"dataset_id": [3, 4], "x": [1.0, None], "lam": [1.0, 1.0]}))
    with pytest.raises(ValueError, match=rf"dataset 4 has a missing x \(in file .*b\.{fmt}\)$"):
        fit_table(glob)
    c = write("c", pa.table({"id": [5], "x": [1.0]}))
    with pytest.raises(ValueError) as info:
        fit_table(tmp_path)
    text = str(info.value)
    assert (
        text
        == f"{tmp_path}: column 'dataset_id' has a missing id (file {c} has no column 'dataset_id')"
    )
    one = write("a", pa.table({"dataset_id": [1, 2], "x": [1.0, None]}))
    with pytest.raises(ValueError, match=rf"a\.{fmt}: dataset 2 has a missing x$"):
        fit_table(one)  # one file: the label names it already


def test_a_csv_value_that_is_no_number_past_the_sniffed_rows_names_the_line(tmp_path):
    # DuckDB types a CSV column from a sample of rows; text after the sample fails the query.
    path = tmp_path / "late.csv"
    rows = "".join(f"{i},{i * 0.5}\n" for i in range(30_000))
    path.write_text("dataset_id,x\n" + rows + "7,abc\n")
    with pytest.raises(ValueError) as info:
        fit_table(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert "dataset 7 has a non-numeric x = 'abc'" in text


@pytest.mark.parametrize("where", ["file", "glob", "frame", "reader"])
def test_a_bad_value_after_the_first_batch_is_named(tmp_path, where):
    # The bad dataset's value is looked up while the statistics still stream out of DuckDB,
    # which runs one query at a time per connection: the lookup must not need that one.
    ids = np.repeat(np.arange(40), 3)
    x = np.arange(ids.size, dtype=np.float64)
    x[-2] = np.nan  # dataset 39, in the last of ten batches
    table = pa.table({"dataset_id": ids, "x": x})
    glob = pa.table({"dataset_id": [50, 51], "y": [1.0, 2.0]})  # a file without x
    if where in ("frame", "reader"):  # a reader is scanned twice: for the sums, for the NaN
        source = table if where == "frame" else table.to_reader(max_chunksize=7)
    else:
        pq.write_table(table, tmp_path / "a.parquet")
        source = tmp_path / "a.parquet"
    with pytest.raises(ValueError, match=r"dataset 39 has a non-finite x = nan$"):
        fit_table(source, batch_size=4)
    if where == "glob":
        x[-2] = 0.0
        pq.write_table(pa.table({"dataset_id": ids, "x": x}), tmp_path / "a.parquet")
        pq.write_table(glob, tmp_path / "b.parquet")
        with pytest.raises(ValueError, match=r"dataset 50 has a missing x \(file .*b\.parquet"):
            fit_table(str(tmp_path / "*.parquet"), batch_size=4)


def test_json_values_that_mix_numbers_and_text_name_the_dataset(tmp_path):
    # DuckDB types such a column JSON; the first value that is no number is named.
    path = tmp_path / "mixed.jsonl"
    rows = ['{"dataset_id": "b", "x": 3}', '{"dataset_id": "a", "x": 1.5}']
    path.write_text("\n".join([*rows, '{"dataset_id": "a", "x": "2"}']) + "\n")
    with pytest.raises(ValueError) as info:
        fit_table(path)
    assert str(info.value) == f"{path}: dataset 'a' has a non-numeric x = \"2\""
    path.write_text("\n".join(rows) + "\n")
    assert fit_table(path)["n"].to_pylist() == [1, 1]


def test_user_text_is_never_sql(tmp_path):
    path = tmp_path / "o'brien data.csv"
    path.write_text('id "q",my x\na,1.0\na,2.0\n')
    res = fit_table(path, id='id "q"', x="my x")
    assert res["dataset_id"].to_pylist() == ["a"] and res["n"].to_pylist() == [2]


def test_float32_in_float32_out_and_no_warning():
    res = fit_table(_long(GROUPS[:3], IDS[:3]))
    assert res["theta"].type == pa.float32()
    assert res["n"].type == pa.int64()


def test_float64_without_x64_warns_and_computes_float32():
    if jax.config.jax_enable_x64:
        pytest.skip("x64 is on")
    with pytest.warns(UserWarning, match="computed in float32"):
        res = fit_table(_long(GROUPS[:3], IDS[:3]), dtype=np.float64)
    assert res["theta"].type == pa.float32()


def test_connections_are_closed_after_bad_input_and_after_reading_back(tmp_path, monkeypatch):
    import duckdb

    from jaxvi._results import read_back
    from jaxvi._results import table_fit as fit_table_module
    from jaxvi._tables import engine

    opened = []

    def recording_connect(**kwargs):
        con = engine.connect(**kwargs)
        opened.append(con)
        return con

    monkeypatch.setattr(fit_table_module, "connect", recording_connect)
    monkeypatch.setattr(read_back, "connect", recording_connect)
    with pytest.raises(ValueError, match="missing column 'x'"):
        fit_table(pa.table({"dataset_id": [1, 2], "y": [0.5, 1.5]}))
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"dataset_id": [1, 2], "z": [0.5, 1.5]}), path)
    assert read_back.read_columns(path, ("dataset_id", "z"))["z"].tolist() == [0.5, 1.5]
    assert len(opened) == 2
    for con in opened:
        with pytest.raises(duckdb.ConnectionException):
            con.execute("SELECT 1")


@pytest.mark.parametrize("error", [None, ValueError])
def test_the_reading_bar_ends_full_once_the_query_is_done(error):
    # DuckDB's estimate of its progress can stop short of 100% (33% on a shuffled CSV, measured)
    # when the group-by hands out its first statistics: the input has then been read whole.
    # After an error the bar stays where the query stopped.
    pytest.importorskip("tqdm")
    from jaxvi._tables.query_progress import QueryProgress

    class StoppedAtAThird:
        def execute(self, sql):
            pass

        def query_progress(self):
            return 33.3

    progress = QueryProgress(StoppedAtAThird(), True, "data.csv")
    with contextlib.suppress(ValueError), progress:
        deadline = time.monotonic() + 30
        while progress.bar.n == 0 and time.monotonic() < deadline:  # the first poll (0.2 s)
            time.sleep(0.05)
        if error is not None:
            raise error("bad input")
    assert progress.bar.n == pytest.approx(33.3 if error else 100.0)


@pytest.mark.parametrize("loading", [True, False], ids=["kernel loading", "kernel ready"])
def test_statistics_are_read_ahead_while_the_kernel_loads(monkeypatch, loading):
    """DuckDB's statistics are read on while the caller waits for its kernel: up to
    READ_AHEAD datasets while ``busy()``, AHEAD once it is ready, and no more; ``started()``
    comes once, when the query runs; the results are the same."""
    from jaxvi._results import table_fit as module

    pulled: list[int] = []
    real = module.statistics_batches

    def counting(*args, **kwargs):
        for batch in real(*args, **kwargs):
            pulled.append(len(batch))
            yield batch

    monkeypatch.setattr(module, "statistics_batches", counting)
    monkeypatch.setattr(module, "READ_AHEAD", 300)
    monkeypatch.setattr(module, "AHEAD", 100)
    # The first batch is taken; the reader then holds READ_AHEAD (3 batches of 100) or AHEAD.
    expected = 4 if loading else 2
    held_at_solve: list[int] = []
    started: list[int] = []

    def before_solve() -> None:  # the kernel loads: the reader fills up to its limit, and stops
        assert started == [0] or started == [1], "started() comes once, before the first solve"
        deadline = time.monotonic() + 30
        while len(pulled) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        held_at_solve.append(len(pulled))

    ids = np.repeat(np.arange(1000), 2)
    data = pa.table({"dataset_id": ids, "x": np.linspace(0.0, 3.0, ids.size)})
    with module.TableFit(data, batch_size=100) as run:
        batches = list(
            run.batches(
                before_solve=before_solve,
                busy=lambda: loading,
                started=lambda: started.append(len(pulled)),  # the query runs: load the kernel
            )
        )
    assert held_at_solve == [expected]
    assert sum(pulled) == 1000
    got = pa.Table.from_batches(batches)
    assert got.equals(fit_table(data, batch_size=100).replace_schema_metadata(None))


def test_an_unfinished_run_stops_its_reader_and_closes():
    """A caller that stops after the first batch (an error while writing, say) and closes the
    run: the reading thread is stopped and joined, and DuckDB's connection closed."""
    ids = np.repeat(np.arange(5000), 2)
    data = pa.table({"dataset_id": ids, "x": np.ones(ids.size)})
    run = TableFit(data, batch_size=100)
    batches = run.batches()
    next(batches)
    run.close()
    assert not any(t.name == "jaxvi-read-ahead" for t in threading.enumerate())
    with pytest.raises(Exception, match="closed"):
        run.con.execute("SELECT 1")
