"""Real files that DuckDB's CSV sniffer guessed wrong, and inputs it could not scan (issue 25).

Each case is one of the defects generated inputs found, as a regression test: the file as it
was found, and what a user expects of it. jaxvi tells DuckDB what is standard (RFC 4180's
``"`` as the quote, ``""`` an empty string) instead of taking the sniffer's guess.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import jaxvi
from jaxvi.cli import main


def _fit(tmp_path, name: str, content: bytes, capsys) -> dict:
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "r.parquet"
    code = main(["fit", str(path), "-o", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    return jaxvi.fit_table(str(path)).to_pydict()


def test_a_quoted_empty_string_is_an_id(tmp_path, capsys):
    res = _fit(tmp_path, "e.csv", b'dataset_id,x\n"",1.0\na,2.0\n', capsys)
    assert res["dataset_id"] == ["", "a"] and res["n"] == [1, 1]


def test_jaxvi_reads_back_csv_whose_ids_pyarrow_quoted(tmp_path):
    table = pa.table({"dataset_id": ["", "a", 'q"uote', "new\nline"], "x": [1.0, 2.0, 3.0, 4.0]})
    pacsv.write_csv(table, tmp_path / "t.csv")
    res = jaxvi.fit_table(str(tmp_path / "t.csv"))
    assert res["dataset_id"].to_pylist() == sorted(table["dataset_id"].to_pylist())


def test_a_bom_before_a_quoted_header(tmp_path, capsys):
    res = _fit(tmp_path, "b.csv", b'\xef\xbb\xbf"dataset_id",x\n1,2\n1,3\n', capsys)
    assert res["dataset_id"] == [1] and res["n"] == [2]
    res = _fit(tmp_path, "c.csv", b'\xef\xbb\xbf"a,b",dataset_id,x\n7,1,2\n8,1,3\n', capsys)
    assert res["n"] == [2]


def test_the_first_quoted_field_after_the_sniffers_sample(tmp_path, capsys):
    rows = "".join(f"id{i % 500},{i % 7}\n" for i in range(25_000))
    content = ("dataset_id,x\n" + rows + '"late, quoted",1.5\n').encode()
    res = _fit(tmp_path, "late.csv", content, capsys)
    assert len(res["dataset_id"]) == 501
    assert res["n"][res["dataset_id"].index("late, quoted")] == 1


def test_a_single_quote_is_no_quote_character(tmp_path, capsys):
    res = _fit(tmp_path, "q.csv", b"dataset_id,x\n'a',1\na,2\n", capsys)
    assert res["dataset_id"] == ["'a'", "a"] and res["n"] == [1, 1]
    # Python's csv module reads two records here; so does jaxvi.
    res = _fit(tmp_path, "q2.csv", b"x,dataset_id\r\n1,''\r\n0,\"\r\na,\"\r\n", capsys)
    assert res["dataset_id"] == ["\r\na,", "''"]


@pytest.mark.parametrize(
    ("name", "content", "ids"),
    [
        ("d.csv", b"dataset_id,x\n2024-01-01,1\n2024-01-02,2\n", ["2024-01-01", "2024-01-02"]),
        ("t.csv", b"dataset_id,x\ntrue,1\nfalse,2\n", ["false", "true"]),
        (
            "d.jsonl",
            b'{"dataset_id": "2024-01-01", "x": 1}\n{"dataset_id": "2024-01-02", "x": 2}\n',
            ["2024-01-01", "2024-01-02"],
        ),
    ],
)
def test_ids_that_look_like_dates_or_booleans_are_labels(tmp_path, capsys, name, content, ids):
    res = _fit(tmp_path, name, content, capsys)
    assert res["dataset_id"] == ids


def test_a_float16_value_column_of_an_arrow_table_or_dataframe():
    x = np.array([1.0, 2.0, 3.5], np.float16)
    want = jaxvi.fit_table(pa.table({"dataset_id": [1, 1, 2], "x": x.astype(np.float32)}))
    got = jaxvi.fit_table(pa.table({"dataset_id": [1, 1, 2], "x": pa.array(x, pa.float16())}))
    assert got.to_pydict() == want.to_pydict()
    pd = pytest.importorskip("pandas")
    got = jaxvi.fit_table(pd.DataFrame({"dataset_id": [1, 1, 2], "x": x}))
    assert got.to_pydict() == want.to_pydict()
