"""The command's kernel cache: JAX's persistent compilation cache in the command's cache folder
(an application's choice, not the library's), made ready in a second thread while DuckDB
reads, and handed to the workers of a ``--scheduler local`` cluster."""

from __future__ import annotations

import argparse

__all__ = ["cache_folder", "use_compilation_cache", "warm_kernel", "worker_env", "writable"]


def cache_folder() -> str:
    """The command's cache folder: ``JAX_COMPILATION_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/jaxvi/xla`` (``~/.cache/jaxvi/xla``)."""
    import os

    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "jaxvi", "xla")
    return folder


def use_compilation_cache(folder: str) -> None:
    """JAX's persistent compilation cache in ``folder``, for this command (a library must
    not set it): the second run of a command loads its kernels instead of compiling them."""
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def warm_kernel(args: argparse.Namespace, dtype_name: str) -> None:
    """Make the fit kernel ready for full batches while DuckDB reads: import JAX and load the
    compiled kernel from JAX's persistent compilation cache in the command's cache folder (or
    compile it there, on a first run)."""
    import sys
    import warnings
    from pathlib import Path

    import numpy as np

    from jaxvi._results.kernel import CACHE_ENTRY_PREFIX, KernelShape, warm
    from jaxvi._results.table_fit import BATCH_SIZE
    from jaxvi._study.study import enable_dtype

    enable_dtype(dtype_name)
    shape = KernelShape(
        args.batch_size or BATCH_SIZE,
        np.dtype(dtype_name or "float32"),
        lam_rows=args.lam_column is not None,
        sigma_rows=args.sigma_column is not None,
        theta=args.theta,
    )
    cache = cache_folder()
    if not writable(cache):
        import jax

        # JAX reads JAX_COMPILATION_CACHE_DIR itself, and would warn on every entry it tries.
        jax.config.update("jax_enable_compilation_cache", False)
        warm(shape)
        return
    use_compilation_cache(cache)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warm(shape)
    damaged = False
    for w in seen:
        if "persistent compilation cache entry" in str(w.message):
            damaged = True
        else:  # not ours to hide
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if damaged:
        # JAX compiled the kernel, but never replaces an entry: remove it for the next run.
        for entry in Path(cache).glob(CACHE_ENTRY_PREFIX + "*"):
            entry.unlink(missing_ok=True)
        print(
            f"jaxvi fit: warning: the kernel saved in {cache} could not be read, and was "
            "compiled again (the damaged entry is removed)",
            file=sys.stderr,
        )


def writable(folder: str) -> bool:
    """Whether the cache folder can be made and written; if not, one warning on stderr (the
    run goes on, compiling its kernel instead of loading it)."""
    import os
    import sys
    import tempfile

    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        print(
            f"jaxvi fit: warning: cache folder {folder} cannot be written ({err.strerror}); "
            "the kernel is compiled on every run (set JAX_COMPILATION_CACHE_DIR)",
            file=sys.stderr,
        )
        return False
    return True


def worker_env() -> dict[str, str]:
    """The environment of the workers of a ``--scheduler local`` cluster: JAX's persistent
    compilation cache in the command's cache folder, so that a second run's workers load the
    kernel instead of compiling it (a remote cluster's workers keep their own settings)."""
    cache = cache_folder()
    if not writable(cache):
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
