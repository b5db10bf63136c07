"""The documentation site builds with warnings as errors, and lists every public name.

The docstrings' examples run as doctests in the suite itself (``--doctest-modules`` over
``jaxvi/``, pyproject.toml); the notebooks are executed by ``tests/test_notebooks.py`` and
rendered here from their committed outputs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import jaxvi
import jaxvi.bench
import jaxvi.dask

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _documented() -> set[str]:
    """The names the API page's autosummary tables list, as ``module.name``."""
    found, module = set(), None
    for line in (DOCS / "api.md").read_text().splitlines():
        if m := re.match(r"\.\. currentmodule:: (\S+)", line.strip()):
            module = m.group(1)
        elif module and re.fullmatch(r"   [A-Za-z_]\w*", line):
            found.add(f"{module}.{line.strip()}")
    return found


def test_the_api_page_lists_every_public_name():
    public = {f"jaxvi.{n}" for n in jaxvi.__all__ if n != "__version__"}
    public |= {f"jaxvi.dask.{n}" for n in jaxvi.dask.__all__}
    public |= {f"jaxvi.bench.{n}" for n in jaxvi.bench.__all__}
    documented = _documented()
    assert public - documented == set(), "public names missing from docs/api.md"
    assert documented - public == set(), "docs/api.md lists names that are not public"


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path):
    pytest.importorskip("sphinx")  # the docs extra (in the test extra)
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = tmp_path / "html"
    for page in ("index", "getting-started", "api", "contributing", "guide/dask"):
        assert (html / f"{page}.html").is_file(), page
    assert (html / "notebooks" / "02_simulation_study.html").is_file()
    # The reference is made from the docstrings: fit_table's arguments are on its page.
    fit_table = (html / "_autosummary" / "jaxvi.fit_table.html").read_text()
    assert "memory_limit" in fit_table and "csv_delimiter" in fit_table
