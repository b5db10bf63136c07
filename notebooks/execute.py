"""Execute the notebooks in place, keeping their outputs (run before committing a notebook).

Usage: ``python notebooks/execute.py [NAME.ipynb ...]`` (all notebooks when none are named).
Each runs in a fresh kernel of *this* interpreter, with the notebook's folder as working
directory; the saved outputs are what the repository shows.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
KERNEL_NAME = "jaxvi-notebooks"


@contextmanager
def this_python_kernel():
    """A kernelspec that runs ``sys.executable``, found first on ``JUPYTER_PATH``.

    The ``python3`` spec may point at another environment; this one cannot.
    """
    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = Path(tmp) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "jaxvi (this interpreter)",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (tmp, old) if p)
        try:
            yield KERNEL_NAME
        finally:
            if old is None:
                del os.environ["JUPYTER_PATH"]
            else:
                os.environ["JUPYTER_PATH"] = old


def execute(path: Path, *, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell of ``path`` in a fresh kernel; returns the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    with this_python_kernel() as kernel_name:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name=kernel_name,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    # Keep the generic kernelspec in the saved file, not the temporary one.
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def main(argv: list[str]) -> int:
    names = argv or sorted(p.name for p in HERE.glob("[0-9]*.ipynb"))
    for name in names:
        path = HERE / name
        start = time.perf_counter()
        nb = execute(path)
        nbformat.write(nb, path)
        print(f"{name}: executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
