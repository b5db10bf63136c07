"""What ``jaxvi bench`` times: each contender as a :class:`Contender` record.

The padded kernels on a device-resident block, the ragged statistics and ``fit`` from host
NumPy, the host-to-device copy, ``jnp.sum`` over the same bytes (the roofline proxy), and the
peers (:mod:`jaxvi._tools.peers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._model.solve import solve
from jaxvi._stats.data import Ragged
from jaxvi._stats.padded import suff_stats
from jaxvi._stats.ragged import suff_stats_ragged
from jaxvi._tools import peers as peer_fns

__all__ = ["Contender", "compiled_thunk", "padded_contenders", "ragged_contenders"]


@dataclass(frozen=True)
class Contender:
    """One timed contender.

    Attributes:
        name: its row's name.
        run: one repetition, blocking until done; returns θ ``(D,)`` for the error column, or
            ``None``.
        kind: ``"roofline"`` (``jnp.sum`` over the same bytes), ``"jaxvi"`` or ``"peer"``.
        roofline: the name of the roofline contender its bytes are measured against.
        num_datasets: datasets per repetition.
        nbytes: useful bytes read per repetition.
        compile_seconds: compile time measured apart; ``None`` when ``run`` compiles inside
            its first call (then the first call's excess over the median is reported).
        note: what else a reader needs to know.
        reference: θ to measure the error against (the first ``len`` datasets), or ``None``.
        headline: its ratio against each peer (the ragged ``fit``) or its roofline fraction
            (the padded kernels) is a headline of the report.
        copy: the name of the host-to-device copy contender of the same bytes, for work that
            starts from host memory (its rate bounds such work on an accelerator), or ``None``.
    """

    name: str
    run: Callable[[], Any]
    kind: str
    roofline: str
    num_datasets: int
    nbytes: int
    compile_seconds: float | None = 0.0
    note: str = ""
    reference: np.ndarray | None = None
    headline: bool = False
    copy: str | None = None


def compiled_thunk(fn: Callable, *args: Any) -> tuple[Callable[[], Any], float]:
    """``fn`` compiled for ``args`` and warmed up: a blocking thunk, and the compile time."""
    t0 = time.perf_counter()
    exe = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(exe(*args))
    return lambda: jax.block_until_ready(exe(*args)), compile_s


def padded_contenders(x: jax.Array) -> list[Contender]:
    """The padded kernels on the device-resident block ``x`` ``(D, L)``, and their roofline.

    ``lengths`` are all ``L``: every byte is useful, so the GB/s compare with the roofline's.
    ``solve(suff_stats(x, lengths))`` is the headline kernel; full rows (``lengths=None``) are
    the fast path beside it."""
    rows, nbytes = x.shape[0], x.nbytes
    roof = "jnp.sum (roofline, padded)"
    note = "device-resident float32"
    thunk, c = compiled_thunk(jnp.sum, x)
    out = [Contender(roof, thunk, "roofline", roof, rows, nbytes, c, note)]
    lengths = jax.device_put(np.full(rows, x.shape[1], np.int32))
    for exact in (False, True):
        tag = " + exact" if exact else ""
        thunk, c = compiled_thunk(
            lambda x, n, exact=exact: solve(suff_stats(x, n), exact=exact), x, lengths
        )
        name = f"padded solve{tag}, lengths"
        out.append(Contender(name, thunk, "jaxvi", roof, rows, nbytes, c, note, headline=True))
        thunk, c = compiled_thunk(lambda x, exact=exact: solve(suff_stats(x), exact=exact), x)
        name = f"padded solve{tag}, full rows"
        out.append(Contender(name, thunk, "jaxvi", roof, rows, nbytes, c, note))
    return out


def ragged_contenders(
    values: np.ndarray, offsets: np.ndarray, peers: Sequence[str], svi: dict[str, int]
) -> list[Contender]:
    """``fit`` from host NumPy, the ragged statistics on device-resident values, their
    roofline, and the peers."""
    from jaxvi._fit.fit import fit

    num, nbytes = offsets.shape[0] - 1, values.nbytes
    roof = "jnp.sum (roofline, ragged)"
    dev_values, dev_offsets = jax.device_put(values), jax.device_put(offsets)
    ref = peer_fns.numpy_reduceat(values, offsets)[0]
    thunk, c = compiled_thunk(jnp.sum, dev_values)
    out = [Contender(roof, thunk, "roofline", roof, num, nbytes, c, "device-resident values")]
    thunk, c = compiled_thunk(suff_stats_ragged, dev_values, dev_offsets)
    out.append(
        Contender(
            "ragged stats, jit(suff_stats_ragged)", thunk, "jaxvi", roof, num, nbytes, c,
            "device-resident values; statistics only", headline=True,
        )
    )  # fmt: skip
    cpu = jax.devices()[0].platform == "cpu"
    copy = "host-to-device copy (device_put)"
    put = lambda: jax.block_until_ready(jax.device_put(values))
    note = "the values only" + ("; a CPU backend may alias them instead" if cpu else "")
    out.append(Contender(copy, put, "roofline", roof, num, nbytes, None, note))
    data = Ragged(values, offsets)
    auto = "native" if cpu else "device"
    for engine in ("auto", "xla"):
        for exact in (False, True):
            name = "ragged fit" + (" + exact" if exact else "")
            if engine == "xla":
                name += ", XLA engine"
            run = partial(lambda e, x: fit(data, exact=x, engine=e).theta, engine, exact)
            note = "from host NumPy, validation on; " + (
                f"the {auto} engine (the default here)"
                if engine == "auto"
                else "length buckets copied on the host, reduced by XLA"
            )
            out.append(
                Contender(
                    name, run, "jaxvi", roof, num, nbytes, None, note, ref,
                    headline=engine == "auto" and not exact, copy=copy,
                )
            )  # fmt: skip
    simple = {
        "numpy": ("NumPy reduceat (float64)", peer_fns.numpy_reduceat, ""),
        "torch": ("PyTorch segment_reduce", peer_fns.torch_segment_reduce, "float32, autograd"),
        "numba": (
            "numba prange loop (float64)",
            peer_fns.numba_loop,
            "shifted sums in float64 on every core, then NumPy's closed form",
        ),
    }
    for key in peers:
        if key in simple:
            name, fn, note = simple[key]
            first = time.perf_counter()
            fn(values[:100], offsets[offsets <= 100])  # numba compiles here
            c = time.perf_counter() - first
            out.append(
                Contender(
                    name, partial(lambda f: f(values, offsets)[0], fn), "peer", roof, num,
                    nbytes, c, note, ref,
                )
            )  # fmt: skip
    if "numpyro" in peers:
        count = svi["datasets"]
        lengths = np.diff(offsets)[:count]
        width = int(max(lengths.max(initial=1), 1))
        xs = np.zeros((count, width), np.float32)
        xs[np.arange(width) < lengths[:, None]] = values[: int(lengths.sum())]
        t0 = time.perf_counter()
        fit_svi = peer_fns.numpyro_svi(
            xs, lengths, svi["steps"], seed=svi["seed"], num_particles=svi["particles"]
        )
        note = (
            f"{svi['steps']} steps of Trace_ELBO({svi['particles']} particles) on the first "
            f"{count} datasets; datasets/s from that subset"
        )
        c = time.perf_counter() - t0
        nb = int(lengths.sum()) * 4
        out.append(
            Contender("NumPyro SVI (vmapped)", fit_svi, "peer", roof, count, nb, c, note, ref)
        )
    return out
