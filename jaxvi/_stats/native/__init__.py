"""The native CPU statistics kernel: loaded once, registered with XLA, or why not.

``_suff_stats`` is a C++17 extension (``suff_stats.cc``, built by ``pip install`` through
scikit-build-core and nanobind) holding two XLA FFI handlers, ``jaxvi_ragged_stats`` and
``jaxvi_padded_stats``, registered here for the CPU platform, and a host function for NumPy
arrays, ``window_stats``, which :func:`jaxvi.fit` calls on CPU.

If the extension cannot be loaded or registered, :func:`load` warns once, naming the cause,
and every caller uses the XLA path instead. :func:`host_kernel` gives ``window_stats`` alone,
without importing JAX (for NPZ input, read while JAX loads in another thread).
``JAXVI_NATIVE=0`` in the environment turns the kernel off on purpose (no warning): for A/B
measurements and for tests of the XLA path.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

__all__ = ["available", "host_kernel", "load", "reason"]

_loaded: tuple[ModuleType | None, str | None] | None = None
_warned = False


def _extension() -> tuple[ModuleType | None, str | None]:
    if os.environ.get("JAXVI_NATIVE", "1") == "0":
        return None, "turned off by JAXVI_NATIVE=0"
    try:
        from jaxvi._stats.native import _suff_stats  # type: ignore[attr-defined]
    except ImportError as err:
        return None, f"the extension did not load ({err}); reinstall jaxvi with a C++ compiler"
    return _suff_stats, None


def _warn_once(why: str | None) -> None:
    global _warned
    if not _warned and not (why or "").startswith("turned off"):
        _warned = True
        warnings.warn(
            f"jaxvi: the native CPU statistics kernel is not available: {why}. Falling back "
            "to the XLA path (NumPy for NPZ input), which is several times slower on CPU",
            RuntimeWarning,
            stacklevel=4,
        )


def _load() -> tuple[ModuleType | None, str | None]:
    _suff_stats, why = _extension()
    if _suff_stats is None:
        return None, why
    import jax

    try:
        for name, handler in _suff_stats.handlers().items():
            jax.ffi.register_ffi_target(name, handler, platform="cpu")
    except Exception as err:  # XLA refuses a handler of an FFI API it does not support
        return None, f"XLA refused its handlers ({err})"
    return _suff_stats, None


def load() -> ModuleType | None:
    """The extension module, registered with XLA; ``None`` (after one warning naming the cause)
    when it cannot be used."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
        if _loaded[0] is None:
            _warn_once(_loaded[1])
    return _loaded[0]


def host_kernel() -> ModuleType | None:
    """The extension for its host function ``window_stats`` only, without importing JAX or
    registering anything; ``None`` (after the same one warning) when it cannot be loaded."""
    module, why = _extension()
    if module is None:
        _warn_once(why)
    return module


def available() -> bool:
    """Whether the native kernel is loaded and registered (loading it if need be)."""
    return load() is not None


def reason() -> str | None:
    """Why the native kernel is not used, or ``None`` when it is."""
    load()
    assert _loaded is not None
    return _loaded[1]
