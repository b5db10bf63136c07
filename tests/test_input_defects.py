"""Real files that DuckDB's CSV sniffer guessed wrong, and inputs it could not scan (issue 25).

Each case is one of the defects generated inputs found, as a regression test: the file as it
was found, and what a user expects of it. jaxvi tells DuckDB what is standard (RFC 4180's
``"`` as the quote, ``""`` an empty string) instead of taking the sniffer's guess.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
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


def test_the_user_names_another_quote_or_delimiter(tmp_path, capsys):
    """--csv-quote and --csv-delimiter (csv_quote, csv_delimiter): DuckDB's read_csv options,
    for files that are not RFC 4180; the command and fit_table agree."""
    path = tmp_path / "q.csv"
    path.write_bytes(b"dataset_id;x\n'a;b';1\n'it''s';2\n'a;b';3\n")
    out = tmp_path / "r.parquet"
    code = main(
        ["fit", str(path), "-o", str(out), "-q", "--csv-quote", "'", "--csv-delimiter", ";"]
    )
    assert code == 0, capsys.readouterr().err
    res = jaxvi.fit_table(str(path), csv_quote="'", csv_delimiter=";")
    assert res["dataset_id"].to_pylist() == ["a;b", "it's"] and res["n"].to_pylist() == [2, 1]
    assert pq.read_table(out).select(["dataset_id", "n"]).equals(res.select(["dataset_id", "n"]))
    # A header after a byte-order mark, read by jaxvi, takes the delimiter given too.
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b'\xef\xbb\xbf"dataset_id"|"x"\n1|2\n1|3\n')
    assert jaxvi.fit_table(str(bom), csv_delimiter="|")["n"].to_pylist() == [2]


def test_a_tab_delimiter_typed_as_backslash_t(tmp_path, capsys):
    """`--csv-delimiter '\\t'`, as a shell passes it, is a tab."""
    path = tmp_path / "t.csv"
    path.write_text("dataset_id\tx\na,b\t1\na,b\t2\n")
    out = tmp_path / "r.parquet"
    assert main(["fit", str(path), "-o", str(out), "-q", "--csv-delimiter", "\\t"]) == 0, (
        capsys.readouterr().err
    )
    res = pq.read_table(out)
    assert res["dataset_id"].to_pylist() == ["a,b"] and res["n"].to_pylist() == [2]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--csv-quote", "ab"], "csv_quote must be one character (not a newline), got 'ab'"),
        (["--csv-delimiter", ""], "csv_delimiter must be one character (not a newline), got ''"),
        (["--csv-quote", ""], "csv_quote must be one character (not a newline), got ''"),
        (["--csv-quote", ";", "--csv-delimiter", ";"], "csv_quote and csv_delimiter must differ"),
    ],
)
def test_a_bad_csv_option_is_one_line(tmp_path, capsys, options, message):
    path = tmp_path / "d.csv"
    path.write_text("dataset_id,x\n1,2\n")
    code = main(["fit", str(path), "-o", str(tmp_path / "r.parquet"), "-q", *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_a_csv_option_for_input_that_is_not_csv_is_refused(tmp_path):
    pq.write_table(pa.table({"dataset_id": [1], "x": [2.0]}), tmp_path / "d.parquet")
    with pytest.raises(ValueError, match="apply to CSV input, not parquet"):
        jaxvi.fit_table(str(tmp_path / "d.parquet"), csv_delimiter=";")
    frame = pa.table({"dataset_id": [1], "x": [2.0]})
    with pytest.raises(ValueError, match="an in-memory table: csv_quote and csv_delimiter"):
        jaxvi.fit_table(frame, csv_quote="'")
