"""A compiled kernel run through jaxlib's own client, without importing JAX.

``import jax`` takes 0.6 s and 80 MB more than jaxlib's client alone (``jaxlib.xla_client``:
0.15 s, 105 MB on a 2-core machine), and a kernel that is already compiled needs only the
client: load the executable, put the arguments on the device, run, and read the results back.
The ``jaxvi`` command does this with its saved kernel (:mod:`jaxvi._tables.saved_kernel`),
on a CPU only: :func:`jax_would_use_this_cpu` says when JAX would have run the kernel here too.

The calls used are jaxlib's (jax's own layer below the Python API): a CPU client, executable
(de)serialization, ``batched_device_put``, ``execute_sharded``, ``array_result_handler`` and
DLPack export. They are not a public API, so every kernel that is loaded is first checked
against the results JAX gave when it was saved (:mod:`jaxvi._tables.saved_kernel`); a jaxlib
where any of this fails or differs costs the run a compile, never a wrong result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Runtime", "jax_would_use_this_cpu", "parameters", "serialize"]

# Packages that give JAX a backend other than the CPU (its plugin namespace, and the TPU
# runtime): with one installed, JAX's default device may not be this CPU.
_ACCELERATOR_PACKAGES = ("jax_plugins", "libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin")


def jax_would_use_this_cpu() -> bool:
    """Whether JAX's default device in this process would be the CPU, as far as can be told
    without importing it: ``JAX_PLATFORMS`` unset or ``cpu``, and no accelerator plugin
    installed."""
    import importlib.util

    platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
    if platforms not in ("", "cpu"):
        return False
    return all(importlib.util.find_spec(p) is None for p in _ACCELERATOR_PACKAGES)


class _Aval:
    """The shape and dtype jaxlib reads from an array's abstract value."""

    __slots__ = ("dtype", "shape", "weak_type")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.weak_type = False


class _DLPack:
    """A device array seen through DLPack, for :func:`numpy.from_dlpack` (CPU memory)."""

    def __init__(self, array: Any, jaxlib: Any) -> None:
        self._array = array
        self._jaxlib = jaxlib

    def __dlpack__(self, stream: Any = None, **_: Any) -> Any:
        return self._jaxlib.buffer_to_dlpack_managed_tensor(self._array, stream=None)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


class Runtime:
    """One CPU device of a jaxlib client, and the calls a compiled kernel needs.

    Args:
        client: a ``jaxlib`` client (``jax.devices()[0].client`` in a process that uses JAX),
            or ``None`` for a CPU client of this runtime's own, made without importing JAX.
    """

    def __init__(self, client: Any = None) -> None:
        from jaxlib import _jax
        from jaxlib import xla_client as xc

        if client is None:
            if "jax" not in sys.modules:
                # jax sets this when it is imported (and sets its own again if it is later);
                # device_put reads it. On: arrays keep their dtype, float64 included.
                _jax.jax_jit.set_enable_x64_state(
                    _jax.config.Config("jax_enable_x64", True, include_in_jit_key=True)
                )
            if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
                # Without JAX's set-up, XLA logs INFO lines (the device count) on stderr.
                from jaxlib import utils

                utils.absl_set_min_log_level(1)  # warnings and errors only, as under JAX
            client = xc.make_cpu_client()
        self.client = client
        self.device = client.devices()[0]
        if self.device.platform != "cpu":
            raise ValueError(f"the runtime runs on a CPU, not {self.device.platform}")
        self._jax = _jax

        class Sharding(_jax.SingleDeviceSharding):
            # What jaxlib asks of a single-device sharding beyond its C++ base.
            def _to_xla_hlo_sharding(self, num_dimensions: int) -> Any:
                return xc.HloSharding.replicate()

            @property
            def memory_kind(self) -> Any:
                return self._memory_kind

        self._sharding = Sharding(self.device)
        self._devices = _jax.DeviceList((self.device,))

    def load(self, payload: bytes) -> Any:
        """The executable that :func:`serialize` gave ``payload`` for, loaded on the device."""
        return self.client.deserialize_executable(payload, executable_devices=self._devices)

    def run(
        self, executable: Any, args: Sequence[np.ndarray], outputs: Sequence[tuple[Any, Any]]
    ) -> tuple[np.ndarray, ...]:
        """Run ``executable`` on ``args`` (NumPy arrays, passed without a copy when aligned)
        and return its results, of the given ``(shape, dtype)`` each, as NumPy arrays that
        share the device's memory. Returns when they are computed."""
        j = self._jax
        bufs = [
            j.batched_device_put(
                _Aval(a.shape, a.dtype),
                self._sharding,
                [a],
                [self.device],
                True,
                False,
                j.HostBufferSemantics.ZERO_COPY,
            )
            for a in args
        ]
        results = executable.execute_sharded(bufs)
        handlers = [
            j.array_result_handler(_Aval(tuple(s), d), self._sharding, True, _skip_checks=True)
            for s, d in outputs
        ]
        arrays = results.consume_with_handlers(handlers)
        for a in arrays:
            a.block_until_ready()
        return tuple(np.from_dlpack(_DLPack(a, j)) for a in arrays)


def serialize(compiled: Any) -> bytes:
    """The bytes of a ``jax.stages.Compiled``'s executable, for :meth:`Runtime.load`."""
    executable = compiled.runtime_executable()
    return executable.client.serialize_executable(executable)


def parameters(executable: Any) -> int:
    """How many arguments ``executable`` takes (JAX leaves out the ones a kernel ignores)."""
    return len(executable.get_parameter_layouts())
