"""What a killed run leaves behind, found and removed by the next run.

A run that is SIGKILLed cannot delete its temporary output (``.NAME.<pid>-….tmp`` beside the
output) or DuckDB's spill files (``<tmp>/jaxvi_duckdb/<pid>/``). Both are named with the id of
the process that made them, so a later run removes those whose process is gone and leaves a
concurrent run's alone. Nothing here imports JAX.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = ["alive", "remove_dead"]


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive).

    Examples:
        >>> alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead(folder: str | os.PathLike, prefix: str = "", suffix: str = "") -> list[Path]:
    """Remove the entries of ``folder`` named ``<prefix><pid>[-…]<suffix>`` whose process is
    gone; the paths removed. A folder that cannot be listed or an entry that cannot be removed
    is left as it is (it is another user's, or already gone)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)(?:-[^/]*)?" + re.escape(suffix) + "$")
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or alive(int(found[1])):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed
