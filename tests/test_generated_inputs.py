"""Generated whole inputs (hypothesis): every valid one gives the in-memory results, every
one-defect one exits 2 with one line and leaves nothing (issue 25).

Inputs are drawn by :mod:`tests.table_strategies`: integer ids of every width (edges
included) or strings with unicode, quotes, delimiters, newlines and empty strings; float16,
float32, float64, integer and decimal values, some 10⁴–10⁶ from zero, single-row datasets;
rows sorted or shuffled over 1–4 files of a folder or a glob, extra columns, renamed columns;
Parquet from pyarrow (compression, row groups, dictionary) and DuckDB, CSV (delimiters,
quoting, CRLF, a BOM) and JSON lines; λ and σ scalars or per-dataset columns. The suite runs
100 examples of each test; ``--runslow`` runs 2,000.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jaxvi
from jaxvi.cli import main
from tests.table_strategies import Drawn, tables, write

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


def _examples(request) -> int:
    return 2000 if request.config.getoption("--runslow") else 100


def _expected(drawn: Drawn) -> dict:
    """The in-memory results: ``jaxvi.fit`` on each dataset's statistics, computed in float64
    from the values written (shift = the mean, Σ(x − x̄)² two-pass), solved in float32."""
    keys = list(drawn.datasets)
    n = np.array([len(v) for v in drawn.datasets.values()], np.float64)
    mean = np.array([v.mean() for v in drawn.datasets.values()])
    m2 = np.array([((v - v.mean()) ** 2).sum() for v in drawn.datasets.values()])
    stats = jaxvi.SuffStats(*(a.astype(np.float32) for a in (n, np.zeros_like(n), m2, mean)))
    lam = np.array([drawn.lams[k] for k in keys], np.float32) if drawn.lam is None else drawn.lam
    sigma = (
        np.array([drawn.sigmas[k] for k in keys], np.float32)
        if drawn.sigma is None
        else drawn.sigma
    )
    sol = jaxvi.fit(stats, lam=lam, sigma=sigma)
    return {
        _label(k): {f: float(getattr(sol, f)[i]) for f in sol._fields} for i, k in enumerate(keys)
    }


def _label(key) -> str:
    return str(int(key)) if isinstance(key, int | np.integer) else str(key)


def _fit_args(drawn: Drawn) -> dict:
    return {
        "id": drawn.id_name,
        "x": drawn.x_name,
        "lam": "lam" if drawn.lam is None else drawn.lam,
        "sigma": "sigma" if drawn.sigma is None else drawn.sigma,
    }


def _close(got: float, want: float, scale: float = 1.0) -> bool:
    return math.isclose(got, want, rel_tol=2e-5, abs_tol=2e-5 * scale)


@pytest.fixture
def folder(tmp_path_factory):
    return tmp_path_factory


def test_valid_generated_inputs_give_the_in_memory_results(request, folder):
    @settings(max_examples=_examples(request), **SETTINGS)
    @given(drawn=tables())
    @example(  # defect 1 of issue 25: a quoted empty string id in CSV
        drawn=Drawn({"": np.array([1.0]), "a": np.array([2.0])}, "string", "float64",
                    "dataset_id", "x", "csv", 1, False, False, 1.0, 1.0,
                    options={"delimiter": ",", "quoting": 1, "lineterminator": "\n", "bom": False})
    )  # fmt: skip
    @example(  # a lone carriage return as an id: the CSV writer must quote it
        drawn=Drawn({"0": np.array([0.0]), "\r": np.array([0.0])}, "string", "float16",
                    "dataset_id", "x", "csv", 1, False, False, 0.25, 0.25,
                    options={"delimiter": ",", "quoting": 0, "lineterminator": "\n", "bom": False})
    )  # fmt: skip
    def check(drawn: Drawn) -> None:
        source = write(drawn, folder.mktemp("in"))
        res = jaxvi.fit_table(source, **_fit_args(drawn)).to_pydict()
        want = _expected(drawn)
        ids = res["dataset_id"]
        assert sorted(map(_label, ids)) == sorted(want)
        if drawn.id_type != "string" and not drawn.fmt == "csv":
            assert all(isinstance(i, int) for i in ids), "integer ids came back as text"
        assert ids == sorted(ids)
        for i, key in enumerate(ids):
            w = want[_label(key)]
            assert res["n"][i] == w["n"]
            scale = abs(w["b"]) / w["theta"] ** 2 + 2 * w["n"] / w["theta"] ** 3 + 1 / w["theta"]
            assert _close(res["grad"][i], w["grad"], scale), (key, "grad")
            for name in ("b", "theta", "elbo", "log_evidence"):
                assert _close(res[name][i], w[name], abs(w[name]) + 1), (key, name)
            assert _close(res["kl_gap"][i], w["kl_gap"], 1e2), (key, "kl_gap")

    check()


DEFECTS = [
    "nan",
    "inf",
    "bad token",
    "empty file",
    "truncated file",
    "missing column",
    "lam not positive",
    "lam varies",
    "output is a folder",
]


def _inject(drawn: Drawn, defect: str, rng: np.random.Generator) -> Drawn:
    """``drawn`` with one defect in its data (the file defects are made after writing)."""
    key = list(drawn.datasets)[rng.integers(len(drawn.datasets))]
    if defect in ("nan", "inf"):
        values = drawn.datasets[key].copy()
        values[rng.integers(len(values))] = np.nan if defect == "nan" else -np.inf
        drawn.datasets[key] = values
        drawn.x_type = "float64"
        if drawn.fmt == "json":  # JSON has no NaN or inf
            _switch(drawn, "csv")
    elif defect == "lam not positive":
        drawn.lam, drawn.lams = None, {k: 1.0 for k in drawn.datasets} | {key: -1.0}
    elif defect == "lam varies":
        drawn.lam, drawn.lams = None, {k: 1.0 for k in drawn.datasets}
        drawn.datasets[key] = np.concatenate([drawn.datasets[key], [0.5]])
        drawn.odd_lam = key
    elif defect == "bad token":
        _switch(drawn, "csv")
        drawn.token = key
    elif defect in ("empty file", "truncated file"):
        _switch(drawn, str(rng.choice(["csv", "json", "parquet-pyarrow"])))
    return drawn


def _switch(drawn: Drawn, fmt: str) -> None:
    """Write ``drawn`` as ``fmt``, with that writer's default options."""
    if fmt != drawn.fmt:
        drawn.fmt = fmt
        drawn.options = (
            {"delimiter": ",", "quoting": 0, "lineterminator": "\n", "bom": False}
            if fmt == "csv"
            else {}
        )


def _spoil(path, defect: str, fmt: str) -> None:
    """Empty or truncate one written file."""
    data = path.read_bytes()
    if defect == "empty file":
        path.write_bytes(b"")
    elif fmt.startswith("parquet"):
        path.write_bytes(data[: len(data) // 2])
    else:  # a text file cut inside a quoted field or a JSON object
        path.write_bytes(data + (b'{"' if fmt == "json" else b'"unclosed'))


def _command(drawn: Drawn, source: str, out) -> list[str]:
    args = _fit_args(drawn)
    argv = ["fit", source, "-o", str(out), "-q", "--id-column", args["id"]]
    argv += ["--value-column", args["x"]]
    argv += ["--lam-column", "lam"] if drawn.lam is None else ["--lam", str(drawn.lam)]
    argv += ["--sigma-column", "sigma"] if drawn.sigma is None else ["--sigma", str(drawn.sigma)]
    return argv


def test_one_defect_exits_2_with_one_line_and_leaves_nothing(request, folder, capsys):
    @settings(max_examples=_examples(request), **SETTINGS)
    @given(drawn=tables(), defect=st.sampled_from(DEFECTS), seed=st.integers(0, 2**16))
    def check(drawn: Drawn, defect: str, seed: int) -> None:
        drawn = _inject(drawn, defect, np.random.default_rng(seed))
        base = folder.mktemp("in")
        source = write(drawn, base)
        if defect in ("empty file", "truncated file"):
            _spoil(sorted(p for p in base.iterdir() if p.is_file())[0], defect, drawn.fmt)
        if defect == "missing column":
            drawn.x_name = "no such column"
        out_dir = folder.mktemp("out")
        out = out_dir / ("taken" if defect == "output is a folder" else "r.parquet")
        if defect == "output is a folder":
            out.mkdir()
        capsys.readouterr()
        code = main(_command(drawn, source, out))
        err = capsys.readouterr().err
        assert code == 2, (defect, err)
        assert err.count("\n") == 1 and err.startswith("jaxvi fit: error: "), err
        left = sorted(p.name for p in out_dir.iterdir())
        assert left == (["taken"] if defect == "output is a folder" else []), left

    check()
