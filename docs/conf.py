"""Sphinx configuration: MyST pages, notebooks rendered from their committed outputs
(myst-nb, never executed here), the API reference from the docstrings (autodoc, napoleon for
their Google style), and the Book theme, as jax, optax and blackjax publish theirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import jaxvi

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

project = "jaxvi"
author = "jaxvi developers"
copyright = "2026, jaxvi developers"
release = jaxvi.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks' committed outputs (the suite executes them)
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autosummary_generate = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "sphinx_book_theme"
html_title = f"jaxvi {release}"
html_theme_options = {"show_toc_level": 2}
suppress_warnings = ["myst.header"]  # pages include files whose headings start at any level


def _copy_notebooks() -> None:
    """The repository's notebooks, copied beside the pages that list them (Sphinx reads
    sources under this folder only)."""
    target = HERE / "notebooks"
    target.mkdir(exist_ok=True)
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)


_copy_notebooks()
