"""The ``jaxvi`` command's table kernel, kept compiled in its cache folder.

Tracing and lowering the table kernel is 0.3–0.5 s of Python, and JAX's persistent cache
needs both before it can look the executable up; the command does this while DuckDB runs
its query, and on 2 cores it was the longest part of a run. Loading the executable itself
(:func:`load`) takes 0.07 s and needs neither, nor the modules that define the kernel.

Only the command uses this (a library must not write caches). A file is named by a SHA-256
of everything its executable depends on (:func:`kernel_key`): the jax, jaxlib and jaxvi
versions, the source of every jaxvi module, the device and its platform version, the CPU's
feature flags, ``XLA_FLAGS``, and the kernel's arguments (shapes, dtypes, ``exact``). A loaded
executable is run once on the warm-up batch before it is used; one that does not load or run
(another jaxlib, a damaged file) is compiled again and replaced. The copy saved is compiled
without JAX's persistent cache (:func:`compile_to_save`) and checked the same way before it is
written, atomically.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import jax

__all__ = ["compile_to_save", "kernel_key", "load", "save"]

_PACKAGE = Path(__file__).resolve().parent.parent
_SUFFIX = ".jaxvi-kernel"


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


def kernel_key(signature: tuple) -> str:
    """The file name for the kernel with ``signature`` (its arguments' shapes and dtypes and
    its static arguments) on this machine, with this software."""
    import jaxlib

    from jaxvi._version import __version__

    device = jax.devices()[0]
    h = hashlib.sha256()
    for part in (
        jax.__version__,
        jaxlib.__version__,
        __version__,
        device.platform,
        device.device_kind,
        device.client.platform_version,
        _cpu_flags(),
        os.environ.get("XLA_FLAGS", ""),
        repr(signature),
    ):
        h.update(str(part).encode() + b"\0")
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:32] + _SUFFIX


def _runs(compiled: Any, args: list[Any]) -> bool:
    """Whether ``compiled`` runs on ``args`` (an executable that loads may still lack code)."""
    try:
        jax.block_until_ready(compiled(*args))
    except Exception:
        return False
    return True


def load(folder: str | os.PathLike, key: str, args: list[Any], outputs: int) -> Any | None:
    """The executable saved under ``key``, loaded onto the default device and run once on
    ``args`` (the kernel's arguments, a warm-up batch; it returns a tuple of ``outputs``
    arrays); ``None`` when there is none or it does not load or run."""
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        payload = (Path(folder) / key).read_bytes()
    except OSError:
        return None
    try:
        compiled = deserialize_and_load(payload, *_trees(args, outputs))
    except Exception:  # another jaxlib, a damaged file: compile again
        return None
    return compiled if _runs(compiled, args) else None


def _trees(args: list[Any], outputs: int) -> tuple[Any, Any]:
    """The kernel's input and output pytree structures: its positional arguments, and a
    tuple of ``outputs`` arrays."""
    return (
        jax.tree_util.tree_structure((tuple(args), {})),
        jax.tree_util.tree_structure((0,) * outputs),
    )


def compile_to_save(lowered: Any) -> Any:
    """Compile ``lowered`` without JAX's persistent cache: on CPU an executable that JAX
    loaded from that cache serializes without the code of its fusions ("Function ... not
    found" when the copy runs)."""
    flag = "jax_enable_compilation_cache"
    before = getattr(jax.config, flag)
    jax.config.update(flag, False)
    try:
        return lowered.compile()
    finally:
        jax.config.update(flag, before)


def save(folder: str | os.PathLike, key: str, compiled: Any, args: list[Any], outputs: int) -> None:
    """Save ``compiled`` under ``key`` if its serialized copy loads and runs on ``args``
    (atomically; when the copy fails, or the folder cannot be written, nothing is saved and
    the next run compiles again)."""
    from jax.experimental.serialize_executable import deserialize_and_load, serialize

    folder = Path(folder)
    tmp = None
    try:
        payload, _, _ = serialize(compiled)
        if not _runs(deserialize_and_load(payload, *_trees(args, outputs)), args):
            return
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, folder / key)
    except Exception:  # a cache is never worth failing a run for
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
