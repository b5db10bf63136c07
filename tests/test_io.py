"""Long-format tables in and out (jaxvi._io): grouping, formats, metadata, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxvi._tables import files as _io


def _long(path, ids, values, **kw):
    writer = _io.open_writer(path, kw.pop("metadata", None))
    writer.write({"dataset_id": np.asarray(ids), "x": np.asarray(values, np.float64)})
    writer.close()


def test_group_rows_first_appearance_order_and_stable_rows():
    ids = np.array(["b", "a", "b", "c", "a", "b"])
    vals = np.arange(6.0)
    g = _io.group_rows(ids, vals)
    assert g.ids.tolist() == ["b", "a", "c"]
    assert g.values.tolist() == [0.0, 2.0, 5.0, 1.0, 4.0, 3.0]
    assert g.offsets.tolist() == [0, 3, 5, 6]


def test_group_rows_contiguous_input_is_kept_as_is():
    ids = np.array([5, 5, 2, 9, 9, 9])
    g = _io.group_rows(ids, np.arange(6.0))
    assert g.ids.tolist() == [5, 2, 9]
    assert g.offsets.tolist() == [0, 2, 3, 6]
    assert g.values.tolist() == list(range(6))


@pytest.mark.parametrize("ext", ["parquet", "csv", "npz"])
def test_long_table_round_trip_every_format(tmp_path, ext):
    path = tmp_path / f"d.{ext}"
    ids = np.array([3, 1, 3, 2, 1])
    vals = np.array([0.5, -1.25, 2.0, 1e-30, 7.0])
    if ext == "npz":
        g = _io.group_rows(ids, vals)
        np.savez(path, values=g.values, offsets=g.offsets, ids=g.ids)
    else:
        _long(path, ids, vals)
    t = _io.read_table(path)
    assert isinstance(t, _io.LongChunk)
    assert t.ids.tolist() == [3, 1, 2]
    assert t.values.tolist() == [0.5, 2.0, -1.25, 7.0, 1e-30]
    assert t.offsets.tolist() == [0, 2, 4, 5]


def test_csv_float32_values_round_trip_exactly(tmp_path):
    vals = np.random.default_rng(0).normal(size=50).astype(np.float32)
    path = tmp_path / "d.csv"
    writer = _io.open_writer(path)
    writer.write({"dataset_id": np.zeros(50, np.int64), "x": vals})
    writer.close()
    assert np.array_equal(_io.read_table(path).values.astype(np.float32), vals)


def test_string_ids_with_commas_and_quotes_survive_csv(tmp_path):
    path = tmp_path / "d.csv"
    ids = np.array(["a,b", 'say "hi"', "a,b"])
    _long(path, ids, [1.0, 2.0, 3.0])
    t = _io.read_table(path)
    assert t.ids.tolist() == ["a,b", 'say "hi"']
    assert t.values.tolist() == [1.0, 3.0, 2.0]


def test_stats_table_detected_by_columns(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("dataset_id,n,sum_x,sum_x2\nu,3,6,14\nv,0,0,0\n")
    t = _io.read_table(path)
    assert isinstance(t, _io.StatsChunk)
    assert t.ids.tolist() == ["u", "v"]
    assert t.n.tolist() == [3.0, 0.0]
    assert t.shift.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset_id,x\n1,2\n1,abc\n", "dataset 1 has a non-numeric x = 'abc'"),
        ("dataset_id,x\n1,2\n7,inf\n", "dataset 7 has a non-finite x = inf"),
        ("dataset_id,y\n1,2\n", "missing column 'x'"),
        ("dataset_id,x\n", "no data rows"),
        ("dataset_id,n,sum_x,sum_x2\n4,-1,0,0\n", "dataset 4 has n = -1.0"),
        ("dataset_id,n,sum_x,sum_x2\n4,1,0,0\n4,2,0,0\n", "dataset 4 appears more than once"),
        ("dataset_id,n,sum_x,sum_x2\nk,2,1,0.1\n", "dataset 'k' has sum_x = 1.0 and sum_x2 = 0.1"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _io.read_table(path)


def test_bad_npz_offsets_are_refused(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, values=np.ones(3), offsets=np.array([0, 2, 1, 3]))
    with pytest.raises(ValueError, match="never decrease"):
        _io.read_table(path)


def _sorted_parquet(path, num, rng, row_group_size=97):
    sizes = rng.integers(1, 9, num)
    ids = np.repeat(np.arange(num) * 3, sizes)  # sorted, with gaps
    vals = rng.normal(2.0, 1.0, ids.size)
    pq.write_table(pa.table({"dataset_id": ids, "x": vals}), path, row_group_size=row_group_size)
    return ids, vals


def test_streamed_chunks_equal_the_whole_table(tmp_path):
    path = tmp_path / "d.parquet"
    _sorted_parquet(path, 300, np.random.default_rng(1))
    whole = _io.read_table(path)
    total, it = _io.read_chunks(path, 17, batch_rows=50)
    chunks = [c for c, _ in it]
    assert total == whole.offsets[-1]
    assert len(chunks) == -(-300 // 17)
    assert all(len(c) == 17 for c in chunks[:-1])
    assert np.array_equal(np.concatenate([c.ids for c in chunks]), whole.ids)
    assert np.array_equal(np.concatenate([c.values for c in chunks]), whole.values)
    for c in chunks:
        assert c.offsets[0] == 0 and c.offsets[-1] == len(c.values)


def test_unsorted_parquet_stops_streaming(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"dataset_id": [1, 2, 1], "x": [0.0, 1.0, 2.0]}), path)
    _, it = _io.read_chunks(path, 10)
    with pytest.raises(_io.NotSorted):
        list(it)
    _, it = _io.read_chunks(path, 10, stream=False)
    (chunk, rows), *_ = list(it)
    assert chunk.ids.tolist() == [1, 2] and rows == 3


def test_streaming_reports_a_late_nan_with_its_global_row(tmp_path):
    path = tmp_path / "d.parquet"
    vals = np.zeros(500)
    vals[321] = np.nan
    ids = np.arange(500) // 5
    pq.write_table(pa.table({"dataset_id": ids, "x": vals}), path, row_group_size=100)
    _, it = _io.read_chunks(path, 4, batch_rows=100)
    with pytest.raises(ValueError, match=r"dataset 64 has a non-finite x = nan \(data row 322\)"):
        list(it)


@pytest.mark.parametrize("ext", ["parquet", "csv", "npz"])
def test_metadata_round_trip(tmp_path, ext):
    path = tmp_path / f"r.{ext}"
    _long(path, [1], [2.0], metadata={"lam": "2.5", "dtype": "float64"})
    meta = _io.read_metadata(path)
    assert meta["lam"] == "2.5" and meta["dtype"] == "float64"
    cols = _io.read_columns(path, ("dataset_id", "x"))
    assert cols["dataset_id"].tolist() == [1] and cols["x"].tolist() == [2.0]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), _io.atomic_path(out) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_parquet_is_a_value_error(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        _io.read_table(path)


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown table format '\.txt'"):
        _io.table_format(tmp_path / "d.txt")


def test_atomic_output_gets_the_usual_permissions(tmp_path):
    out = tmp_path / "out.csv"
    with _io.atomic_path(out) as tmp:
        tmp.write_text("x\n")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_npz_long_columns_are_grouped(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, dataset_id=np.array(["q", "p", "q"]), x=np.array([1.0, 2.0, 3.0]))
    t = _io.read_table(path)
    assert t.ids.tolist() == ["q", "p"] and t.values.tolist() == [1.0, 3.0, 2.0]
