"""Every notebook runs top to bottom in a fresh kernel, and keeps its promises.

The kernel is this interpreter (see ``notebooks/execute.py``), started in the notebook's own
folder, with ``CI=true`` so that the notebooks use their small sizes. A cell that raises (the
notebooks ``assert`` the claims their prose makes) or writes a warning fails the test.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9]*.ipynb"))


def _execute_module():
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_all_four_notebooks_exist():
    assert NAMES == [
        "01_derivation.ipynb",
        "02_simulation_study.ipynb",
        "03_benchmarking.ipynb",
        "04_files.ipynb",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_keeps_outputs_and_explains_every_plot(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = nb.cells
    code = [c for c in cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "notebook is not executed"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    plots = 0
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        has_plot = any("image/png" in o.get("data", {}) for o in cell.outputs)
        if not has_plot:
            continue
        plots += 1
        # Axes are labelled in the code that draws them, and a takeaway follows in markdown.
        assert "set_xlabel" in cell.source and "set_ylabel" in cell.source, f"cell {i}: axes"
        after = cells[i + 1] if i + 1 < len(cells) else None
        assert after is not None and after.cell_type == "markdown", f"cell {i}: no takeaway"
        assert after.source.startswith("**Takeaway:**"), f"cell {i}: no takeaway"
    assert plots >= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_cleanly_in_a_fresh_kernel(name, monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PYTHONWARNINGS", "default")
    nb = _execute_module().execute(NOTEBOOKS / name, timeout=300)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            assert out.output_type != "error", f"cell {i}: {out.get('ename')}"
            if out.output_type == "stream" and out.name == "stderr":
                assert not re.search(r"Warning|Error", out.text), f"cell {i}: {out.text}"
