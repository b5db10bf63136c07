"""Files out and back (jaxvi._results.files): formats, metadata, atomic writes, NPZ input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from jaxvi._results import atomic, files, npz, read_back


def _write(path, columns, metadata=None):
    with files.output_table(path, metadata) as writer:
        writer.write(columns)


@pytest.mark.parametrize("ext", ["parquet", "csv", "npz"])
def test_columns_and_metadata_round_trip_in_every_format(tmp_path, ext):
    path = tmp_path / f"r.{ext}"
    ids = np.array(["b", "a,c", 'say "hi"'])
    x = np.array([0.5, -1.25, 1e-30], np.float32)
    _write(path, {"dataset_id": ids, "x": x}, {"lam": "2.5", "dtype": "float32"})
    meta = read_back.read_metadata(path)
    assert meta == {"lam": "2.5", "dtype": "float32"}
    cols = read_back.read_columns(path, ("dataset_id", "x"))
    assert cols["dataset_id"].tolist() == ids.tolist()
    np.testing.assert_array_equal(cols["x"].astype(np.float32), x)


def test_csv_is_plain_for_every_reader_and_its_metadata_is_beside_it(tmp_path):
    path = tmp_path / "r.csv"
    x = np.random.default_rng(0).normal(size=50).astype(np.float32)
    _write(path, {"dataset_id": np.arange(50), "x": x}, {"lam": "2"})
    first = path.read_text().splitlines()[0]
    assert first.replace('"', "") == "dataset_id,x"  # one header line, then rows
    # Default options of three readers, and the float32 values back bit for bit.
    got = [
        pcsv.read_csv(path).column("x").to_numpy(),
        pl.read_csv(path)["x"].to_numpy(),
        pd.read_csv(path)["x"].to_numpy(),
    ]
    for values in got:
        np.testing.assert_array_equal(values.astype(np.float32), x)
    assert json.loads(files.sidecar_path(path).read_text()) == {"lam": "2"}
    assert files.sidecar_path(path).name == "r.csv.json"


def test_failed_write_leaves_no_file_and_no_sidecar(tmp_path):
    with pytest.raises(RuntimeError), files.output_table(tmp_path / "r.csv") as writer:
        writer.write({"x": np.arange(3)})
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", ["parquet", "csv"])
def test_writing_behind_keeps_every_batch_in_order_and_the_metadata(tmp_path, ext):
    path = tmp_path / f"r.{ext}"
    with files.output_table(path, {"lam": "2"}, behind=True) as writer:
        for k in range(9):
            writer.metadata = {"lam": "2", "dtype": "float32"}  # as fit_file sets it
            writer.write({"dataset_id": np.arange(k * 100, (k + 1) * 100), "x": np.full(100, k)})
    table = (pq.read_table if ext == "parquet" else pcsv.read_csv)(path)  # in the file's order
    np.testing.assert_array_equal(table["dataset_id"].to_numpy(), np.arange(900))
    np.testing.assert_array_equal(table["x"].to_numpy(), np.repeat(np.arange(9), 100))
    assert read_back.read_metadata(path) == {"lam": "2", "dtype": "float32"}
    assert writer.rows == 900


def test_an_error_while_writing_behind_reaches_the_caller_and_leaves_no_file(tmp_path):
    path = tmp_path / "r.parquet"
    with (
        pytest.raises(Exception, match="schema"),
        files.output_table(path, behind=True) as writer,
    ):
        writer.write({"dataset_id": np.arange(3), "x": np.zeros(3)})
        for _ in range(4):  # the thread fails on the first of these; a later write raises
            writer.write({"dataset_id": np.arange(3), "y": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_gets_the_usual_permissions(tmp_path):
    out = tmp_path / "out.csv"
    with atomic.atomic_path(out) as tmp:
        tmp.write_text("x\n")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize(
    ("name", "message"),
    [("r.txt", r"unknown output format '\.txt'"), ("r.csv.gz", "unknown output format")],
)
def test_unknown_output_format_is_refused(tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        files.output_format(tmp_path / name)


def test_output_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "r.parquet").mkdir()
    with pytest.raises(ValueError, match="is a folder"), files.output_table(tmp_path / "r.parquet"):
        pass


@pytest.mark.parametrize("kernel", ["native", "numpy"])
def test_npz_ragged_layout_becomes_shifted_statistics_and_keeps_empty_datasets(
    tmp_path, monkeypatch, kernel
):
    if kernel == "numpy":
        monkeypatch.setenv("JAXVI_NATIVE", "0")  # NumPy's reduceat, as without the extension
    path = tmp_path / "d.npz"
    values = np.array([1e6 + 0.5, 1e6 - 0.5, 3.0, 4.0, 8.0])
    np.savez(path, values=values, offsets=np.array([0, 2, 2, 5]), ids=np.array([7, 3, 5]))
    table = npz.read_npz(path)
    assert table.column_names == ["dataset_id", "n", "sum_x", "sum_x2", "shift"]
    assert table["dataset_id"].to_pylist() == [7, 3, 5]
    assert table["n"].to_pylist() == [2.0, 0.0, 3.0]
    assert table["shift"].to_pylist() == [1e6 + 0.5, 0.0, 3.0]
    assert table["sum_x"].to_pylist() == [-1.0, 0.0, 6.0]
    assert table["sum_x2"].to_pylist() == [1.0, 0.0, 26.0]


def test_npz_ragged_statistics_agree_between_the_native_kernel_and_numpy(monkeypatch):
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 300, 2000)
    lengths[::5] = 0
    offsets = np.r_[0, np.cumsum(lengths)]
    values = rng.normal(1e5, 1.0, offsets[-1])  # a mean 10⁵ sd from zero
    native = npz._ragged_statistics(values, offsets)
    monkeypatch.setenv("JAXVI_NATIVE", "0")
    numpy = npz._ragged_statistics(values, offsets)
    for k in ("n", "shift", "sum_x"):
        np.testing.assert_array_equal(native[k][lengths == 0], 0.0)
        np.testing.assert_allclose(native[k], numpy[k], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(native["sum_x2"], numpy["sum_x2"], rtol=1e-12)


def test_npz_input_is_read_without_importing_jax(tmp_path):
    """The command imports JAX in a second thread while the input is read."""
    path = tmp_path / "d.npz"
    np.savez(path, values=np.arange(6.0), offsets=np.array([0, 2, 6]))
    code = (
        "import sys; from jaxvi._results import npz; "
        f"t = npz.read_npz({str(path)!r}); assert t.num_rows == 2; "
        "assert 'jax' not in sys.modules, 'jax was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_npz_long_columns_and_statistics_are_tables(tmp_path):
    np.savez(tmp_path / "l.npz", dataset_id=np.array(["q", "p"]), x=np.array([1.0, 2.0]))
    assert npz.read_npz(tmp_path / "l.npz").column_names == ["dataset_id", "x"]
    np.savez(tmp_path / "s.npz", n=np.array([2.0]), sum_x=np.array([1.0]), sum_x2=np.array([3.0]))
    stats = npz.read_npz(tmp_path / "s.npz")
    assert stats["dataset_id"].to_pylist() == [0] and stats["n"].to_pylist() == [2.0]


def test_npz_arrays_in_the_other_byte_order_give_the_same_tables(tmp_path):
    # An NPZ file written on a big-endian machine: Arrow cannot hold its arrays as they are.
    ids, x = np.array([3, 1, 3]), np.array([0.5, -1.25, 2.0], np.float32)
    np.savez(tmp_path / "native.npz", dataset_id=ids, x=x)
    swapped = {k: v.astype(v.dtype.newbyteorder(">" if v.dtype.byteorder != ">" else "<"))
               for k, v in {"dataset_id": ids, "x": x}.items()}  # fmt: skip
    np.savez(tmp_path / "swapped.npz", **swapped)
    assert npz.read_npz(tmp_path / "swapped.npz").equals(npz.read_npz(tmp_path / "native.npz"))
    stats = {"n": np.array([2.0, 1.0]), "sum_x": np.array([1.0, 0.0]), "sum_x2": np.ones(2)}
    np.savez(tmp_path / "s.npz", **stats)
    np.savez(tmp_path / "s_swapped.npz", **{k: v.astype(">f8") for k, v in stats.items()})
    assert npz.read_npz(tmp_path / "s_swapped.npz").equals(npz.read_npz(tmp_path / "s.npz"))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"values": np.ones(3), "offsets": np.array([0, 2, 1, 3])}, "never decrease"),
        ({"values": np.ones(3)}, "missing array 'offsets'"),
        ({"values": np.array([1.0, np.nan]), "offsets": np.array([0, 1, 2])},
         "dataset 1 has a non-finite value = nan"),
        ({"values": np.ones(2), "offsets": np.array([0, 2]), "ids": np.array([1, 2])},
         r"'ids' has shape \(2,\), expected \(1,\)"),
        ({"values": np.ones(3), "offsets": np.arange(4), "ids": np.array(["b", "a", "b"])},
         "dataset 'b' appears more than once in 'ids'$"),
    ],
)  # fmt: skip
def test_bad_npz_names_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        npz.read_npz(path)


def test_unreadable_npz_and_parquet_metadata(tmp_path):
    np.savez(tmp_path / "ok.npz", values=np.ones(3), offsets=np.array([0, 3]))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz: not an NPZ file \(a zip of \.npy arrays"):
        npz.read_npz(tmp_path / "bad.npz")  # numpy took it for a pickle
    np.save(tmp_path / "one.npy", np.arange(3.0))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")  # one array, named .npz
    with pytest.raises(ValueError, match=r"one\.npz: not an NPZ file"):
        npz.read_npz(tmp_path / "one.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:-30])
    with pytest.raises(ValueError, match=r"cut\.npz: not a"):
        npz.read_npz(tmp_path / "cut.npz")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_back.read_metadata(tmp_path / "bad.parquet")


def test_read_columns_names_a_missing_column(tmp_path):
    _write(tmp_path / "r.parquet", {"dataset_id": np.arange(2), "x": np.ones(2)})
    with pytest.raises(ValueError, match="missing column 'z'"):
        read_back.read_columns(tmp_path / "r.parquet", ("dataset_id", "z"))


def test_long_tables_keep_repeated_ids_small(tmp_path):
    # A long table's ids repeat: dictionary-encoded they cost a few bits a row.
    ids = np.repeat(np.arange(1000), 50)
    with files.output_table(tmp_path / "d.parquet", dictionary=("dataset_id",)) as w:
        w.write({"dataset_id": ids, "x": np.zeros(ids.size, np.float32)})
    assert (tmp_path / "d.parquet").stat().st_size < 60_000
    assert pq.read_table(tmp_path / "d.parquet")["dataset_id"].to_numpy().tolist() == (ids.tolist())


def test_read_columns_keeps_the_files_row_order(tmp_path):
    # Many row groups, read by several DuckDB threads: the rows must still come back in the
    # file's order (not sorted, not interleaved).
    path = tmp_path / "r.parquet"
    ids = np.random.default_rng(1).permutation(400_000)
    pq.write_table(pa.table({"dataset_id": ids, "z": ids * 0.5}), path, row_group_size=10_000)
    cols = read_back.read_columns(path, ("dataset_id", "z"))
    np.testing.assert_array_equal(cols["dataset_id"], ids)
    np.testing.assert_array_equal(cols["z"], ids * 0.5)
