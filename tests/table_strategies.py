"""Hypothesis strategies that draw whole table inputs: ids, values, layouts, writers.

After pyarrow's ``tests/strategies.py``: small strategies that compose. :func:`tables` draws
a :class:`Drawn` input: datasets (ids and values), the column names, λ and σ, and how the rows
are laid out and written (:func:`write`) as Parquet (pyarrow or DuckDB), CSV (Python's csv
module: delimiters, quoting, line ends, a BOM) or JSON lines, in 1–4 files of a folder or a glob.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=0, max_size=8
)
# Characters that CSV, JSON and SQL each treat specially, so that they turn up often.
AWKWARD = st.sampled_from(["", ",", ";", "|", "\t", '"', "'", "\n", "\r\n", " ", "é", "数", "🙂"])
INT_TYPES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
COLUMN_NAMES = st.sampled_from(["x", "x val", 'my "x"', "Wert", "x.1"])
ID_NAMES = st.sampled_from(["dataset_id", "id", "data set", "it's", '"quoted"'])


@dataclass
class Drawn:
    """One drawn input: ``datasets`` maps id → its values (float64, exactly what is written)."""

    datasets: dict[Any, np.ndarray]
    id_type: str  # an INT_TYPES key, or "string"
    x_type: str  # float16, float32, float64, int32 or decimal
    id_name: str
    x_name: str
    fmt: str  # parquet-pyarrow, parquet-duckdb, csv, json
    files: int
    shuffled: bool
    glob: bool
    lam: float | None  # None: a per-dataset column
    sigma: float | None
    lams: dict[Any, float] = field(default_factory=dict)
    sigmas: dict[Any, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    extra: bool = False
    seed: int = 0
    odd_lam: Any = None  # a dataset whose last row gets another λ (a defect)
    token: Any = None  # a dataset whose first value is written as text "abc" (CSV, a defect)

    def rows(self) -> dict[str, list]:
        """The long table's columns, rows in dataset order."""
        ids, xs = [], []
        for key, values in self.datasets.items():
            ids += [key] * len(values)
            xs += list(values)
        cols: dict[str, list] = {self.id_name: ids, self.x_name: xs}
        if self.lam is None:
            cols["lam"] = [self.lams[i] for i in ids]
            if self.odd_lam is not None:
                last = len(ids) - 1 - ids[::-1].index(self.odd_lam)
                cols["lam"][last] *= 2
        if self.sigma is None:
            cols["sigma"] = [self.sigmas[i] for i in ids]
        if self.extra:
            cols["note"] = [f"row {k}" for k in range(len(ids))]
        return cols


@st.composite
def ids(draw, id_type: str, count: int) -> list:
    if id_type == "string":
        base = st.one_of(TEXT, AWKWARD, st.builds(lambda a, b: a + b, AWKWARD, TEXT))
        return draw(st.lists(base, min_size=count, max_size=count, unique=True))
    low, high = INT_TYPES[id_type]
    edges = st.sampled_from([low, high, 0, -1 if low < 0 else 1])
    values = st.one_of(edges, st.integers(low, high))
    return draw(st.lists(values, min_size=count, max_size=count, unique=True))


@st.composite
def values(draw, x_type: str, size: int) -> np.ndarray:
    """One dataset's values, exactly representable in ``x_type``, sometimes far from zero."""
    far = draw(st.sampled_from([0.0, 0.0, 0.0, 1e4, -3e5, 1e6]))
    if x_type == "float16":
        far = min(far, 1e3) if far >= 0 else max(far, -1e3)
    noise = draw(st.lists(st.integers(-64, 64), min_size=size, max_size=size))
    raw = far + np.asarray(noise, np.float64) / 8
    if x_type == "int32":
        return np.round(raw)
    if x_type == "decimal":
        return np.round(raw * 4) / 4
    return raw.astype(x_type).astype(np.float64)


@st.composite
def tables(draw) -> Drawn:
    count = draw(st.integers(1, 12))
    id_type = draw(st.sampled_from([*INT_TYPES, "string", "string"]))
    fmt = draw(st.sampled_from(["parquet-pyarrow", "parquet-duckdb", "csv", "json"]))
    if fmt == "json" and id_type == "uint64":
        id_type = "int64"  # JSON readers take integers up to 2⁶³
    x_type = draw(st.sampled_from(["float16", "float32", "float64", "int32", "decimal"]))
    keys = draw(ids(id_type, count))
    sizes = draw(st.lists(st.integers(1, 6), min_size=count, max_size=count))
    datasets = {k: draw(values(x_type, n)) for k, n in zip(keys, sizes, strict=True)}
    positive = st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.5])
    lam = draw(st.one_of(st.none(), positive))
    sigma = draw(st.one_of(st.none(), positive))
    options: dict[str, Any] = {}
    if fmt == "csv":
        options = {
            "delimiter": draw(st.sampled_from([",", ";", "|", "\t"])),
            "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
            "lineterminator": draw(st.sampled_from(["\n", "\r\n"])),
            "bom": draw(st.booleans()),
        }
    elif fmt == "parquet-pyarrow":
        options = {
            "compression": draw(st.sampled_from(["none", "snappy", "gzip", "zstd", "brotli"])),
            "row_group_size": draw(st.sampled_from([1, 3, 1 << 20])),
            "use_dictionary": draw(st.booleans()),
        }
    elif fmt == "parquet-duckdb":
        options = {"compression": draw(st.sampled_from(["uncompressed", "snappy", "zstd"]))}
    return Drawn(
        datasets=datasets,
        id_type=id_type,
        x_type=x_type,
        id_name=draw(ID_NAMES),
        x_name=draw(COLUMN_NAMES),
        fmt=fmt,
        files=draw(st.integers(1, 4)),
        shuffled=draw(st.booleans()),
        glob=draw(st.booleans()),
        lam=lam,
        sigma=sigma,
        lams={k: draw(positive) for k in keys} if lam is None else {},
        sigmas={k: draw(positive) for k in keys} if sigma is None else {},
        options=options,
        extra=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def _arrow(drawn: Drawn, cols: dict[str, list]) -> pa.Table:
    arrays = {}
    for name, column in cols.items():
        if name == drawn.id_name:
            kind = pa.string() if drawn.id_type == "string" else pa.from_numpy_dtype(drawn.id_type)
            arrays[name] = pa.array(column, kind)
        elif name == drawn.x_name and drawn.x_type == "decimal":
            arrays[name] = pa.array([f"{v:.2f}" for v in column]).cast(pa.decimal128(12, 2))
        elif name == drawn.x_name:
            x_type = "int32" if drawn.x_type == "int32" else drawn.x_type
            arrays[name] = pa.array(np.asarray(column, np.float64).astype(x_type))
        else:
            arrays[name] = pa.array(column)
    return pa.table(arrays)


def _text(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float | np.floating) else str(value)


def write(drawn: Drawn, folder: Path) -> str:
    """Write ``drawn`` into ``folder`` as its files; the path, glob or folder to read."""
    import duckdb

    cols = drawn.rows()
    order = np.arange(len(cols[drawn.id_name]))
    if drawn.shuffled:
        order = np.random.default_rng(drawn.seed).permutation(order)
    cols = {k: [v[i] for i in order] for k, v in cols.items()}
    ending = {"csv": ".csv", "json": ".jsonl"}.get(drawn.fmt, ".parquet")
    parts = np.array_split(np.arange(len(order)), drawn.files)
    folder.mkdir(parents=True, exist_ok=True)
    for k, rows in enumerate(parts):
        if len(rows) == 0:
            continue
        part = {name: [column[i] for i in rows] for name, column in cols.items()}
        path = folder / f"part-{k}{ending}"
        if drawn.fmt == "parquet-pyarrow":
            pq.write_table(_arrow(drawn, part), path, **drawn.options)
        elif drawn.fmt == "parquet-duckdb":
            arrow_part = _arrow(drawn, part)  # DuckDB scans it by its name (not float16)
            if drawn.x_type == "float16":
                arrow_part = arrow_part.set_column(
                    1, drawn.x_name, arrow_part.column(1).cast(pa.float32())
                )
            con = duckdb.connect()
            con.execute(
                f"COPY arrow_part TO '{path}' (FORMAT parquet, COMPRESSION "
                f"'{drawn.options['compression']}')"
            )
            con.close()
        elif drawn.fmt == "csv":
            out = io.StringIO()
            options = {k: v for k, v in drawn.options.items() if k != "bom"}
            # An unquoted empty field is a missing value (pandas, DuckDB, R); a quoted "" is a
            # string. Python's writer leaves a lone \r unquoted when lines end in \n, which
            # every reader then takes for a line break.
            if "" in drawn.datasets or any("\r" in str(k) for k in drawn.datasets):
                options["quoting"] = csv.QUOTE_ALL
            writer = csv.writer(out, **options)
            writer.writerow(list(part))
            for i in range(len(rows)):
                row = [_text(part[name][i]) for name in part]
                if drawn.token is not None and part[drawn.id_name][i] == drawn.token:
                    row[1], drawn.token = "abc", None  # x is the second column
                writer.writerow(row)
            text = ("\ufeff" if drawn.options["bom"] else "") + out.getvalue()
            path.write_bytes(text.encode("utf-8"))
        else:
            with path.open("w", encoding="utf-8") as f:
                for i in range(len(rows)):
                    row = {name: part[name][i] for name in part}
                    row = {k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()}
                    f.write(json.dumps(row) + "\n")
    return str(folder / f"*{ending}") if drawn.glob else str(folder)
