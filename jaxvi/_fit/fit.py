"""``fit``: the thin wrapper that takes data as users have it and solves every dataset.

Pipeline (DESIGN §2, §4): check the concrete input (:mod:`jaxvi._fit.validate`), make every
dataset's statistics, then solve them in chunks of a fixed size with :func:`jaxvi.solve`, every
chunk sharded over the devices along the dataset axis (:mod:`jaxvi._fit.devices`). The
statistics come from one of three engines:

* ``"native"`` (the default on a CPU backend): the native kernel reads the host values in
  place, on every core (:mod:`jaxvi._fit.native_stats`);
* ``"device"`` (the default on GPU and TPU): the values go to the device as they lie and the
  device builds the length buckets; the host does O(datasets) integer bookkeeping
  (:mod:`jaxvi._fit.device_stats`);
* ``"xla"``: the host copies length buckets into padded blocks that the devices reduce
  (:mod:`jaxvi._fit.blocks`).

NaN and inf in the values surface as non-finite sums and are named before anything is solved.
Memory is bounded by ``chunk_size``, not by the input.

Why the solve is not fused behind the device row sums: a fused kernel is compiled once per block
shape ``(rows, width)``, and XLA takes 1–4 s to compile ``solve`` (measured on 2 CPU cores,
jax 0.10.2) against 0.1–0.4 s for a row sum. Solving in chunks of one size compiles ``solve``
once or twice per call, whatever the bucket ladder, for an extra pass over 4 numbers per
dataset (against at least ``min_width`` values per dataset in the reduction).

Multi-host
----------
``fit`` runs unchanged on a cluster. Start one Python process per host, call
``jax.distributed.initialize()`` first in each (on Cloud TPU and under SLURM or Open MPI it
finds its peers by itself; otherwise pass ``coordinator_address="host0:1234"``,
``num_processes`` and ``process_id``), and give each process its own share of the datasets::

    import jax, jaxvi
    jax.distributed.initialize()                 # before any other JAX call
    my_data = load_shard(jax.process_index())    # this host's datasets only
    sol = jaxvi.fit(my_data, lam=my_lam)         # results for this host's datasets, in order

Every process must make the call, with the same options (``theta`` given or not, ``exact``,
``dtype``, ``chunk_size``, widths). The processes agree on the block shapes through one small
all-gather of bucket counts, then each block is one global array built with
``jax.make_array_from_process_local_data`` and sharded over every device of the cluster. Each
process gets back the rows it supplied. Per-dataset ``lam``, ``sigma`` and ``theta`` are also
per process. Passing ``devices=jax.local_devices()`` instead makes each process work alone,
without any collective. On CPU clusters set
``jax.config.update("jax_cpu_collectives_implementation", "gloo")`` before initialising.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from jaxvi._fit.aligned import rows_for
from jaxvi._fit.blocks import raw_windows, reduce_blocks
from jaxvi._fit.buckets import Flat
from jaxvi._fit.device_stats import device_layout, device_stats
from jaxvi._fit.devices import Devices, Job, run_jobs
from jaxvi._fit.native_stats import native_chunks, native_stats
from jaxvi._fit.plan import ChunkPlan, chunks, ladder
from jaxvi._fit.validate import as_flat_or_stats, check_finite_values, check_param
from jaxvi._model.dtypes import compute_dtype
from jaxvi._model.shift import rebase
from jaxvi._model.solve import Solution, solve
from jaxvi._model.statistics import SuffStats
from jaxvi._progress import progress_bar
from jaxvi._stats import native

__all__ = ["fit"]


@partial(jax.jit, static_argnames=("exact",))
def _solve_stats(n, sum_x, sum_x2, shift, lam, sigma, theta, *, exact):
    return solve(SuffStats(n, sum_x, sum_x2, shift), lam, sigma, theta=theta, exact=exact)


def _solve_jobs(
    stats: tuple[np.ndarray, ...],
    params: tuple,
    sizes: list[int],
    out: Solution,
    dtype: np.dtype,
    exact: bool,
) -> Iterator[Job]:
    """Solve ``stats = (n, sum_x, sum_x2, shift)``, ``(D,)`` each or longer (then the rows
    past ``D``, which ``_rows`` may pass on, must hold 0), in chunks into ``out`` ``(D,)``."""
    kernel = partial(_solve_stats, exact=exact)
    fills = (0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)  # padding rows: an empty dataset, λ = σ = θ = 1
    for size, sl in chunks(sizes, out[0].shape[0]):
        args = tuple(
            rows_for(f, sl, size, fill, dtype)
            for f, fill in zip((*stats, *params), fills, strict=True)
        )

        def store(sol, sl=sl):
            k = sl.stop - sl.start
            for dst, src in zip(out, sol, strict=True):
                dst[sl] = src[:k]

        yield kernel, args, store


def _engine(engine: str, dev: Devices) -> str:
    """The engine that makes the statistics of host data (see ``fit``'s ``engine``)."""
    if engine not in ("auto", "native", "device", "xla"):
        raise ValueError(f"fit: engine must be 'auto', 'native', 'device' or 'xla'; got {engine!r}")
    if engine == "native" and not native.available():
        raise ValueError(f"fit: engine='native', but {native.reason()}")
    if engine != "auto":
        return engine
    if dev.platform != "cpu":
        return "device"
    return "native" if native.available() else "xla"


def fit(
    data: Any,
    lam: ArrayLike = 1.0,
    sigma: ArrayLike = 1.0,
    *,
    theta: ArrayLike | None = None,
    chunk_size: int = 1 << 22,
    validate: bool = True,
    devices: Sequence[jax.Device] | None = None,
    exact: bool = True,
    progress: bool = False,
    dtype: Any = None,
    min_width: int = 8,
    max_width: int = 4096,
    engine: str = "auto",
) -> Solution:
    """Solve many datasets in one call, in bounded memory, on every device.

    Args:
        data: the datasets, as one of

            * :class:`~jaxvi.Ragged` ``(values (M,), offsets (D+1,))``;
            * :class:`~jaxvi.Padded` ``(x (D, n_max), lengths (D,) or None)``;
            * :class:`~jaxvi.SuffStats` of shape ``(D,)`` (solved directly);
            * a sequence of ``D`` 1-D arrays (concatenated once: a copy of the input);
            * a 2-D array ``(D, n)`` of full rows.

            Empty datasets are legal (their posterior is the prior).
        lam: prior rate λ > 0, a scalar or ``(D,)``.
        sigma: noise scale σ > 0, a scalar or ``(D,)``.
        theta: rate of q to evaluate at, a scalar or ``(D,)``; θ* when ``None``.
        chunk_size: values per block on each process (rows × width). Beyond the input and
            the ``(D,)`` results, peak memory is a few blocks plus ``O(D)`` bookkeeping, however
            many values the datasets hold.
        validate: check the input and raise :class:`ValueError` naming the dataset and the
            problem, before anything is solved. NaN and inf in the data are found through the
            reduction's sums, not by a pass of their own. ``False`` skips the value checks; a
            bad dataset then gives NaN in its own row only.
        devices: devices to shard the dataset axis over; all devices (of every process) when
            ``None``. See the module docstring for multi-host runs.
        exact: also compute ``log_evidence`` and ``kl_gap`` (NaN otherwise).
        progress: show a tqdm bar on stderr (when tqdm is installed).
        dtype: compute dtype; the data's float dtype when ``None`` (integers promote).
        min_width: narrowest bucket, a power of two.
        max_width: widest bucket, a power of two; longer datasets are cut into rows of
            this width whose partial sums are added.
        engine: how the statistics of host data are made. ``"native"``: the native kernel
            reads the values in place on every CPU core (no buckets, no copies); ``"device"``:
            the values go to the devices as they lie and the devices build the length buckets
            (the host does integer bookkeeping only); ``"xla"``: the host copies length
            buckets into padded blocks that the devices reduce. ``min_width`` and
            ``max_width`` set the buckets of the last two. ``"auto"``: native on CPU (XLA when
            the kernel is not available), device on GPU and TPU.

    Returns:
        :class:`~jaxvi.Solution` of NumPy ``(D,)`` arrays, one row per dataset in input order.

    Raises:
        ValueError: on bad input (see ``validate``), naming the dataset or parameter.

    Examples:
        >>> import numpy as np
        >>> from jaxvi import fit
        >>> data = [np.array([1.0, 2.0, 3.0], np.float32), np.array([], np.float32)]
        >>> sol = fit(data, lam=2.0)
        >>> sol.n.tolist(), sol.theta.round(4).tolist()
        ([3.0, 0.0], [1.1623, 2.0])
    """
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"fit: chunk_size must be >= 1; got {chunk_size}")
    prepared = as_flat_or_stats(data, validate=validate)
    flat = prepared if isinstance(prepared, Flat) else None
    num = prepared[0].shape[0] if flat is None else flat.starts.shape[0]
    data_dtype = np.result_type(*prepared) if flat is None else flat.values.dtype
    dt = compute_dtype(data_dtype, dtype, who="fit")
    params = tuple(
        None if value is None else check_param(name, value, num, validate=validate, dtype=dt)
        for name, value in (("lam", lam), ("sigma", sigma), ("theta", theta))
    )

    dev = Devices(devices)
    if dev.num_processes > 1:  # a shared scalar may differ between processes: one per row
        params = tuple(None if p is None else np.broadcast_to(p, (num,)) for p in params)
    plan = ChunkPlan(chunk_size, dev.num_local)
    ladder(min_width, max_width)  # checks the options as the user gave them
    widths = ladder(min_width, plan.widest(max_width, min_width))
    how = _engine(engine, dev) if flat is not None else "stats"
    raw = flat is not None and raw_windows(flat, dt)
    if flat is not None and how == "xla":
        plan.bucket(flat, widths, by_length=not raw)
    plan.agree(dev.agree, num)
    chunks = 0
    if flat is not None and how == "native":
        chunks = len(native_chunks(flat, chunk_size))
    elif flat is not None and how == "device":
        chunks = len(device_layout(flat, widths, chunk_size)[2])
    bar = progress_bar(
        progress, "block", plan.num_jobs + chunks, "jaxvi.fit", delay=0.0, leave=True, scale=False
    )
    try:
        if flat is None:  # statistics as given, their shift rounded to dt and the sums adjusted
            with np.errstate(all="ignore"):
                n, sum_x, sum_x2, shift = (np.asarray(f, np.float64) for f in prepared)
                stats = rebase(n, sum_x, sum_x2, shift, dt)
        else:
            rows = sum(plan.solve_sizes)
            if how == "native":
                stats = native_stats(flat, dt, chunk_size, rows, bar)
            elif how == "device":
                stats = device_stats(flat, dt, widths, chunk_size, rows, dev.local, bar)
            else:
                stats = reduce_blocks(flat, dt, widths, plan, dev, bar, raw)
            if validate:  # NaN and inf, found through the sums before anything is solved
                with np.errstate(invalid="ignore"):
                    finite = np.isfinite(stats[1][:num]) & np.isfinite(stats[2][:num])
                check_finite_values(flat, finite, chunk_size)
        out = Solution(*(np.empty(num, dt) for _ in Solution._fields))  # type: ignore[arg-type]
        run_jobs(_solve_jobs(stats, params, plan.solve_sizes, out, dt, exact), dev, bar)
    finally:
        bar.close()
    return out
