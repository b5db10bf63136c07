"""The ``jaxvi`` command's table kernel, kept compiled in its cache folder.

Tracing and lowering the table kernel is 0.3–0.5 s of Python, and importing JAX 0.8 s more
than jaxlib's client alone; on 2 cores both compete with DuckDB's query. A saved kernel is
loaded and run by :class:`~jaxvi._tables.xla_runtime.Runtime`, on a CPU, without importing
JAX or the modules that define the kernel (0.07 s to load).

Only the command uses this (a library must not write caches). A file is named by a SHA-256
of everything its executable depends on (:func:`kernel_key`): the jax, jaxlib and jaxvi
versions, the source of every jaxvi module, the device and its platform version, the CPU's
feature flags, ``XLA_FLAGS``, and the kernel's arguments (shapes, dtypes, ``exact``).

A file holds the executable, the shapes and dtypes of its results, and a SHA-256 of the
results JAX computed on a fixed check batch when it was saved. A kernel is used only after it
gives those same results, bit for bit, on that batch; one that does not load, run or agree
(another jaxlib, a damaged file) is compiled again and replaced. The copy saved is compiled
without JAX's persistent cache (:func:`compile_to_save`) and checked the same way before it
is written, atomically.

Loading a file marks it used (its modification time). Saving one removes the files of the
folder unused for :data:`UNUSED_DAYS` days (kernels of earlier versions, other shapes) and
temporary files that a killed run left behind: the folder does not grow without bound.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxvi._tables.xla_runtime import Runtime, parameters, serialize

__all__ = ["SUFFIX", "UNUSED_DAYS", "SavedKernel", "compile_to_save", "kernel_key", "load", "save"]

_PACKAGE = Path(__file__).resolve().parent.parent
SUFFIX = ".jaxvi-kernel"
_MAGIC = b"jaxvi kernel 2\n"
UNUSED_DAYS = 30  # a saved kernel not loaded for this long is removed by the next save


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), else what ``platform`` says: XLA compiles for them."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _version_file(package: str) -> bytes:
    """The text of ``package``'s ``version.py``, read without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return b""
    try:
        return (Path(spec.origin).parent / "version.py").read_bytes()
    except OSError:
        return b""


def kernel_key(signature: tuple, runtime: Runtime) -> str:
    """The file name for the kernel with ``signature`` (its arguments' shapes and dtypes and
    its static arguments) on ``runtime``'s device, with this software."""
    from jaxvi._version import __version__

    h = hashlib.sha256()
    for part in (
        _version_file("jax"),
        _version_file("jaxlib"),
        __version__,
        runtime.device.platform,
        runtime.device.device_kind,
        runtime.client.platform_version,
        _cpu_flags(),
        os.environ.get("XLA_FLAGS", ""),
        repr(signature),
    ):
        h.update((part if isinstance(part, bytes) else str(part).encode()) + b"\0")
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:32] + SUFFIX


def _digest(arrays: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.shape}{a.dtype.str}".encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class SavedKernel:
    """A loaded executable, called like the jitted kernel: positional arguments (``None``
    for an argument left out), a tuple of NumPy arrays back."""

    def __init__(self, runtime: Runtime, executable: Any, outputs: list[tuple[Any, Any]]):
        self.runtime = runtime
        self.executable = executable
        self.outputs = outputs

    def __call__(self, *args: Any) -> tuple[np.ndarray, ...]:
        given = [np.asarray(a) for a in args if a is not None]
        return self.runtime.run(self.executable, given, self.outputs)

    def agrees(self, check: list[Any], digest: str) -> bool:
        """Whether it runs on ``check`` and gives the results whose :func:`_digest` is
        ``digest`` (a kernel that loads may still lack code, or another jaxlib read its
        arguments otherwise)."""
        try:
            return _digest(self(*check)) == digest
        except Exception:
            return False


def load(folder: str | os.PathLike, key: str, runtime: Runtime, check: list[Any]) -> Any:
    """The kernel saved under ``key``, loaded on ``runtime`` and checked on ``check`` (the
    kernel's arguments for the fixed check batch); ``None`` when there is none, or it does
    not load, run, or give the results it gave when it was saved."""
    path = Path(folder) / key
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(_MAGIC):
            return None
        header, _, payload = data[len(_MAGIC) :].partition(b"\n")
        meta = json.loads(header)
        outputs = [(tuple(shape), np.dtype(dt)) for shape, dt in meta["outputs"]]
        kernel = SavedKernel(runtime, runtime.load(payload), outputs)
    except Exception:  # another jaxlib, a damaged file: compile again
        return None
    if not kernel.agrees(check, meta["digest"]):
        return None
    try:
        os.utime(path)  # used now: kept by _prune
    except OSError:
        pass
    return kernel


def _prune(folder: Path, keep: str) -> None:
    """Remove the saved kernels in ``folder`` unused for :data:`UNUSED_DAYS` days and
    temporary files older than a day, except ``keep``; best effort."""
    now = time.time()
    for path in folder.iterdir():
        if path.name == keep or not path.name.endswith((SUFFIX, ".tmp")):
            continue
        limit = UNUSED_DAYS if path.name.endswith(SUFFIX) else 1
        try:
            if now - path.stat().st_mtime > limit * 86400:
                path.unlink()
        except OSError:  # removed meanwhile by another run, or not ours to remove
            pass


def compile_to_save(lowered: Any) -> Any:
    """Compile ``lowered`` without JAX's persistent cache: on CPU an executable that JAX
    loaded from that cache serializes without the code of its fusions ("Function ... not
    found" when the copy runs)."""
    import jax

    flag = "jax_enable_compilation_cache"
    before = getattr(jax.config, flag)
    jax.config.update(flag, False)
    try:
        return lowered.compile()
    finally:
        jax.config.update(flag, before)


def save(
    folder: str | os.PathLike, key: str, compiled: Any, runtime: Runtime, check: list[Any]
) -> SavedKernel | None:
    """Save ``compiled`` (a ``jax.stages.Compiled`` on ``runtime``'s device) under ``key``,
    with the results JAX computes for ``check``, if its serialized copy loads on ``runtime``
    and gives those results. Returns the loaded copy, or ``None`` when nothing was saved (a
    copy that fails; a folder that cannot be written: the next run compiles again). Written
    atomically."""
    folder = Path(folder)
    tmp = None
    try:
        expected = [np.asarray(r) for r in compiled(*check)]
        digest = _digest(expected)
        payload = serialize(compiled)
        copy = SavedKernel(runtime, runtime.load(payload), [(r.shape, r.dtype) for r in expected])
        if parameters(copy.executable) != sum(a is not None for a in check):
            return None  # JAX left out an argument: the copy would be called otherwise
        if not copy.agrees(check, digest):
            return None
        header = json.dumps(
            {"outputs": [[list(s), d.str] for s, d in copy.outputs], "digest": digest}
        )
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + header.encode() + b"\n" + payload)
        os.replace(tmp, folder / key)
        tmp = None
        _prune(folder, keep=key)
        return copy
    except Exception:  # a cache is never worth failing a run for
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return None
