"""Columns of numbers between Arrow and NumPy (jaxvi._tables.columns), and the commands that
use them never importing pandas."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvi._tables.columns import arrow_numbers, numbers

DTYPES = ["int8", "int32", "int64", "uint16", "uint64", "float32", "float64"]
# Ids by type code ("f8"): an id that says float64 would send the test to the x64 process.
CODES = [np.dtype(d).str[1:] for d in DTYPES]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    size=st.integers(0, 300),
    cut=st.tuples(st.integers(0, 300), st.integers(0, 300)),
    missing=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_numbers_agree_with_arrow_on_slices_with_and_without_missing_values(
    dtype, size, cut, missing, seed
):
    rng = np.random.default_rng(seed)
    values = (rng.normal(size=size) * 50).astype(dtype)
    mask = rng.random(size) < missing
    array = pa.array(values, mask=mask if missing > 0.5 else None)
    start, stop = sorted(cut)
    array = array.slice(min(start, size), stop - start)  # offset into the buffers
    got = numbers(array)
    want = array.to_numpy(zero_copy_only=False)
    if array.null_count:
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want.astype(np.float64))
    else:
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)


def test_numbers_shares_the_buffer_and_reads_chunked_and_text_columns():
    array = pa.array(np.arange(5, dtype=np.float32))
    view = numbers(array)
    assert view.ctypes.data == array.buffers()[1].address
    chunked = pa.chunked_array([[1, 2], [3]])
    assert numbers(chunked).tolist() == [1, 2, 3]
    assert numbers(pa.array(["a", "b"])).tolist() == ["a", "b"]
    assert numbers(pa.array([], pa.float64())).shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES, ids=CODES)
def test_arrow_numbers_round_trip_without_a_copy(dtype):
    values = np.arange(7).astype(dtype)
    array = arrow_numbers(values)
    assert array.type == pa.from_numpy_dtype(np.dtype(dtype))
    assert array.null_count == 0
    assert array.buffers()[1].address == values.ctypes.data
    np.testing.assert_array_equal(array.to_numpy(), values)


def test_arrow_numbers_copies_strided_foreign_byte_order_and_text_correctly():
    strided = np.arange(10.0)[::3]
    assert arrow_numbers(strided).to_pylist() == [0.0, 3.0, 6.0, 9.0]
    big_endian = np.array([1.5, -2.0], dtype=">f8")
    assert arrow_numbers(big_endian).to_pylist() == [1.5, -2.0]
    assert arrow_numbers(np.array(["a", "bc"])).to_pylist() == ["a", "bc"]
    assert arrow_numbers(np.array([True, False])).to_pylist() == [True, False]


def test_simulate_fit_and_report_never_import_pandas(tmp_path):
    pytest.importorskip("pandas")  # installed with the test extra, so the check can fail
    out = {
        name: str(tmp_path / name)
        for name in (
            "s.parquet",
            "s.truth.parquet",
            "r.parquet",
            "r.npz",
            "s.npz",
            "t.csv",
            "report",
        )
    }
    script = textwrap.dedent(
        f"""
        import sys
        from jaxvi.cli import main
        for argv in (["simulate", "-n", "50", "-o", {out["s.parquet"]!r}, "-q"],
                     ["fit", {out["s.parquet"]!r}, "-o", {out["r.parquet"]!r}, "-q"],
                     ["fit", {out["s.parquet"]!r}, "-o", {out["r.npz"]!r}, "-q"],
                     ["report", {out["r.parquet"]!r}, "--truth", {out["s.truth.parquet"]!r},
                      "-o", {out["report"]!r}, "-q"],
                     ["simulate", "-n", "20", "-o", {out["s.npz"]!r}, "-q"],
                     ["fit", {out["s.npz"]!r}, "-o", {out["t.csv"]!r}, "-q"]):
            assert main(argv) == 0, argv
            assert "pandas" not in sys.modules, argv
        print("ok")
        """
    )  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
    assert pq.read_table(out["r.parquet"]).num_rows == 50
    assert (tmp_path / "report" / "summary.txt").exists()
