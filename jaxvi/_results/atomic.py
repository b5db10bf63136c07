"""Files and folders that appear whole or not at all: written under a temporary name beside
the target (same file system, so that :func:`os.replace` is atomic) and renamed into place
once complete; what a killed run left is removed by the next (:mod:`jaxvi._tables.leftovers`).
Write errors name the output. Nothing is renamed into place once the command was sent
SIGINT or SIGTERM, even where a library swallowed the exception
(:mod:`jaxvi._results.signals`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jaxvi._results.signals import raise_if_signalled
from jaxvi._tables.leftovers import remove_dead

__all__ = ["atomic_folder", "atomic_path", "umask", "write_error"]


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path``, renamed onto it when the block succeeds; removed
    on any exception. An existing folder at ``path`` is replaced only by a complete one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: is a file, expected a folder")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ValueError(f"{path}: folder {parent} does not exist")
    remove_dead(parent, f".{path.name}.", ".tmp")  # what killed runs left here
    try:
        prefix = f".{path.name}.{os.getpid()}-"
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix, suffix=".tmp"))
    except OSError as err:
        raise ValueError(f"{path}: cannot write in {parent} ({err.strerror})") from None
    try:
        yield tmp
        raise_if_signalled()  # one that a library swallowed: the run was asked to stop
        os.chmod(tmp, 0o777 & ~umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it only when the block succeeds.

    The temporary file lives in the destination's folder so that :func:`os.replace` is an
    atomic rename on the same file system. On any exception it is removed; after ``SIGKILL``
    a hidden ``.NAME.<pid>-*.tmp`` file may remain, but never a partial file under ``NAME``;
    the next run to write beside it removes it (:mod:`jaxvi._tables.leftovers`).

    Examples:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "r.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("done")
        >>> out.read_text()
        'done'
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected an output file name")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: folder {path.parent} does not exist")
    remove_dead(path.parent, f".{path.name}.", ".tmp")  # what killed runs left here
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp"
        )
    except OSError as err:  # a read-only or pseudo file system: name the file asked for
        raise ValueError(f"{path}: cannot write in {path.parent} ({err.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        raise_if_signalled()  # one that a library swallowed: the run was asked to stop
        # mkstemp makes the file private (0600); give it the permissions open() would.
        os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_error(path: str | os.PathLike, err: OSError) -> ValueError:
    """A write that failed as one line naming the output asked for, not its temporary file.

    Examples:
        >>> import errno
        >>> print(write_error("r.csv", OSError(errno.EFBIG, "Error writing bytes to file")))
        r.csv: file too large (Error writing bytes to file)
    """
    code = err.errno
    if code is None and (found := re.search(r"\[errno (\d+)\]", str(err), re.I)):
        code = int(found[1])
    detail = (err.strerror or str(err)).splitlines()[0]
    if code is None:
        return ValueError(f"{path}: cannot be written ({detail})")
    detail = re.sub(r"^\[Errno \d+\] ", "", detail)
    return ValueError(f"{path}: {os.strerror(code).lower()} ({detail})")


def umask() -> int:
    """The process's umask (read by setting it and back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
