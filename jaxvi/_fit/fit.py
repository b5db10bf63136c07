"""``fit``: the thin wrapper that takes data as users have it and solves every dataset.

Pipeline (DESIGN §4): check the concrete input, bucket datasets by length on a geometric
ladder, copy each chunk of a bucket on the host into a block of raw windows (or, for data
wider than the compute dtype and for long datasets, of shifted zero-padded rows; see
:mod:`jaxvi._fit.buckets`), and reduce each block on the devices: masked, shifted row sums of raw
windows, plain row sums of shifted rows. NaN and inf in the values surface as non-finite sums
and are named before anything is solved. Then solve
the per-dataset statistics in chunks of a fixed size with :func:`jaxvi.solve`. Every array is
sharded over the devices along the dataset axis. At most two blocks are alive at a time (on an
accelerator the host builds the next while one computes): memory is bounded by
``chunk_size``, not by the input.

Why the solve is not fused behind the row sums: a fused kernel is compiled once per block
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

import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxvi._fit.buckets import (
    _ALIGN,
    ChunkPlan,
    Flat,
    aligned_empty,
    build_block,
    chunks,
    gather_block,
    ladder,
    work_dtype,
)
from jaxvi._fit.native_stats import native_chunks, native_stats
from jaxvi._fit.validate import (
    as_flat_or_stats,
    check_finite_values,
    check_param,
)
from jaxvi._model.solve import Solution, solve
from jaxvi._model.statistics import SuffStats, rebase
from jaxvi._stats import native
from jaxvi._stats.padded import suff_stats_xla, sum_and_sum_sq

__all__ = ["fit"]

Job = tuple[Callable[..., Any], tuple, Callable[[Any], None]]


@jax.jit
def _row_sums(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(Σ_j y_ij, Σ_j y_ij²)`` of a ``(rows, width)`` block, ``(rows,)`` each.

    ``y`` is shifted and zero-padded on the host: plain row sums, no mask (DESIGN §4). Rows of
    at most ``_VARIADIC_WIDTH`` values take one two-output reduction, wider rows two plain
    ones. On XLA:CPU (jax 0.10.2, 16 MB blocks) the two-output form reaches 0.68 / 0.84 / 0.89
    of ``jnp.sum`` at widths 8 / 16 / 32 against 0.19 / 0.34 / 0.57 for two sums, and 0.37
    against 0.61 at width 64; in ``fit`` of 10⁶ ragged datasets the row sums went from 29 to
    20 ms. Measure with ``benchmarks/kernel_study.py --rows 262144 --cols 16
    --only 'variadic,(x*x).sum'``. Either form is one kernel on an accelerator.
    """
    if y.shape[1] <= _VARIADIC_WIDTH:
        return sum_and_sum_sq(y)
    return y.sum(1), (y * y).sum(1)


_VARIADIC_WIDTH = 32


@jax.jit
def _window_sums(x: jax.Array, n: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shifted sums of a block of raw windows (:func:`~jaxvi._fit.buckets.gather_block`),
    ``(rows,)`` each: ``suff_stats(x, n)``, which shifts by each row's first value and masks the
    slots past ``n`` in one pass (:func:`~jaxvi._stats.padded.sum_and_sum_sq`)."""
    st = suff_stats_xla(x, n)
    return st.sum_x, st.sum_x2


@partial(jax.jit, static_argnames=("exact",))
def _solve_stats(n, sum_x, sum_x2, shift, lam, sigma, theta, *, exact):
    return solve(SuffStats(n, sum_x, sum_x2, shift), lam, sigma, theta=theta, exact=exact)


class _Devices:
    """A one-axis mesh over ``devices``; puts process-local blocks and fetches local rows."""

    def __init__(self, devices: Sequence[jax.Device] | None):
        devs = sorted(
            jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id)
        )
        if not devs:
            raise ValueError("fit: devices must not be empty")
        me = jax.process_index()
        self.num_local = sum(d.process_index == me for d in devs)
        platforms = {d.platform for d in devs}
        self.platform = platforms.pop() if len(platforms) == 1 else "mixed"
        self.num_processes = len({d.process_index for d in devs})
        self.sharding = NamedSharding(Mesh(np.array(devs), ("data",)), P("data"))
        # Only the default device: jit itself places NumPy arguments there, through its C++
        # dispatch (0.05 ms per call against 0.5 ms for a device_put of the same arrays; on
        # CPU both adopt an aligned array without a copy).
        self.direct = (
            self.num_processes == 1
            and jax.config.jax_default_device is None
            and devs == jax.local_devices()[:1]
        )

    def put(self, tree: Any) -> Any:
        """Shard every ``(rows, ...)`` array along the data axis; a 0-d array (a parameter
        shared by every dataset) goes in as it is, replicated by ``jit``. On the default
        device alone, NumPy arrays go to ``jit`` as they are."""
        if self.direct:
            return tree
        if self.num_processes > 1:
            return jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self.sharding, x), tree
            )
        # One device_put for every array of the job: a call costs ~0.3 ms whatever it carries,
        # which was most of fit's fixed cost per block on small inputs.
        leaves, treedef = jax.tree.flatten(tree)
        rows = [i for i, x in enumerate(leaves) if x.ndim]
        put = jax.device_put([leaves[i] for i in rows], [self.sharding] * len(rows))
        for i, x in zip(rows, put, strict=True):
            leaves[i] = x
        return jax.tree.unflatten(treedef, leaves)

    def fetch(self, tree: Any) -> Any:
        def local_rows(arr: jax.Array) -> np.ndarray:
            if arr.is_fully_addressable:
                return np.asarray(arr)
            shards = sorted(arr.addressable_shards, key=lambda s: s.index[0].start or 0)
            return np.concatenate([np.asarray(s.data) for s in shards])

        return jax.tree.map(local_rows, tree)

    def agree(self, counts: np.ndarray) -> np.ndarray:
        """The largest of each count over the processes: every process runs the same blocks."""
        if self.num_processes == 1:
            return counts
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(counts.astype(np.int32))
        return np.asarray(gathered).reshape(-1, counts.shape[0]).max(0)


def _run(jobs: Iterator[Job], dev: _Devices, bar: Any) -> None:
    """Dispatch each job, then collect the previous one: on an accelerator the host builds and
    ships block k+1 while the device computes block k (dispatch is asynchronous). The CPU
    backend runs these programs inside the dispatching call (measured, jax 0.10.2), so there
    host and device take turns; dispatching from a second thread did not help on 2 cores
    (benchmarks/RESULTS.md)."""
    pending: deque = deque()
    for kernel, args, store in jobs:
        pending.append((kernel(*dev.put(args)), store))
        if len(pending) > 1:
            out, keep = pending.popleft()
            keep(dev.fetch(out))
            bar.update()
    while pending:
        out, keep = pending.popleft()
        keep(dev.fetch(out))
        bar.update()


def _rows(value: np.ndarray | None, sel: Any, size: int, fill: float, dtype: np.dtype) -> Any:
    """``value[sel]`` padded to ``size`` rows with a harmless ``fill``, 64-byte aligned so
    that the CPU backend takes it without a copy; a scalar stays a scalar.

    A ``value`` that already holds those ``size`` rows from ``sel.start`` on, aligned there
    and in ``dtype`` (the statistics ``_reduce`` makes, padded with ``fill``), is passed as a
    view, not copied."""
    if value is None:
        return None
    if not value.ndim:
        return value.astype(dtype)
    if isinstance(sel, slice) and value.dtype == dtype and value.shape[0] >= sel.start + size:
        view = value[sel.start : sel.start + size]
        if view.ctypes.data % _ALIGN == 0:
            return view
    part = value[sel]
    out = aligned_empty(size, dtype)
    out[: part.shape[0]] = part
    out[part.shape[0] :] = fill
    return out


def _sum_jobs(
    flat: Flat,
    rows: Callable[[slice], tuple[np.ndarray, ...]],
    count: int,
    width: int,
    sizes: list[int],
    store: Callable[[np.ndarray, tuple[np.ndarray, np.ndarray]], None],
    dtype: np.dtype,
    *,
    raw: bool = False,
) -> Iterator[Job]:
    """Row sums at ``width`` of ``count`` rows; ``rows(slice)`` gives
    ``(key, starts, lengths, shifts)`` of a chunk and ``store(key, sums)`` keeps its sums.

    ``raw``: blocks of raw windows, shifted and masked on the device (:func:`_window_sums`;
    datasets that fit one row, shifts unused). Otherwise shifted, zero-padded rows summed
    plainly (:func:`_row_sums`)."""
    for size, sl in chunks(sizes, count):
        key, starts, lengths, shifts = rows(sl)
        if raw:
            x = gather_block(flat, starts, width, size, dtype)
            n = _rows(lengths, slice(0, lengths.shape[0]), size, 0, np.dtype(np.int32))
            yield _window_sums, (x, n), partial(_store_sums, store, key)
        else:
            y = build_block(flat, starts, lengths, shifts, width, size, dtype)
            yield _row_sums, (y,), partial(_store_sums, store, key)


def _store_sums(store, key, res) -> None:
    k = key.shape[0]
    store(key, (res[0][:k], res[1][:k]))


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
            _rows(f, sl, size, fill, dtype)
            for f, fill in zip((*stats, *params), fills, strict=True)
        )

        def store(sol, sl=sl):
            k = sl.stop - sl.start
            for dst, src in zip(out, sol, strict=True):
                dst[sl] = src[:k]

        yield kernel, args, store


def _raw_windows(flat: Flat, dtype: np.dtype) -> bool:
    """Whether the datasets that fit one row go to the device as raw windows, shifted there.

    Only when the data are already in the compute dtype: float64 or integer data computed in
    float32 are shifted on the host in float64 first, so that the spread survives a large
    common offset (:func:`~jaxvi._fit.buckets.build_block`)."""
    return flat.values.dtype == dtype


def _reduce(
    flat: Flat,
    dtype: np.dtype,
    widths: np.ndarray,
    plan: ChunkPlan,
    dev: _Devices,
    bar: Any,
) -> tuple[np.ndarray, ...]:
    """Shifted statistics ``(n, sum_x, sum_x2, shift)`` of every dataset.

    Each is 64-byte aligned and holds ``max(D, sum(plan.solve_sizes))`` rows, zero past
    ``D``: the solve's chunks are then views of them (:func:`_rows`), not copies."""
    num = flat.starts.shape[0]
    n, sum_x, sum_x2, shift = padded = _padded_stats(num, sum(plan.solve_sizes), dtype)
    # Round the shift to the compute dtype first, so that the device's n·shift matches the
    # shift subtracted on the host; subtract in float64 when the data are float64 or integer.
    with np.errstate(all="ignore"):
        shift[:num] = flat.shifts()
    shift[:num][flat.invalid] = np.nan  # NaN in the dataset's own row only (validate=False)
    n[:num] = flat.lengths
    sums = (sum_x[:num], sum_x2[:num])
    sums[0][:] = 0
    sums[1][:] = 0

    def assign(idx, part):
        sums[0][idx], sums[1][idx] = part

    raw = _raw_windows(flat, dtype)
    jobs = []
    for width, idx, lengths, size in zip(
        widths, plan.buckets, plan.bucket_lengths, plan.bucket_sizes, strict=True
    ):

        def bucket_rows(sl, idx=idx, lengths=lengths):
            # Each dataset fits one row: its shift is the row's first value (build_block).
            sel = idx[sl]
            return sel, flat.starts[sel], lengths[sl], None

        jobs.append(
            _sum_jobs(flat, bucket_rows, len(idx), int(width), size, assign, dtype, raw=raw)
        )

    long = plan.long
    long_idx = plan.long_idx
    # The rows of one dataset share its shift, so their partial sums simply add (in float64).
    long_sums = (np.zeros(long_idx.shape[0]), np.zeros(long_idx.shape[0]))

    long_shift = shift[long_idx].astype(work_dtype(flat.values.dtype))

    def long_rows(sl):
        dataset, starts, lengths = long.rows(sl)
        return dataset, starts, lengths, long_shift[dataset]

    def accumulate(dataset, part):
        # inf + (−inf) is NaN in the dataset's own row, as on the device: no warning.
        with np.errstate(invalid="ignore", over="ignore"):
            for dst, src in zip(long_sums, part, strict=True):
                np.add.at(dst, dataset, src)

    jobs.append(
        _sum_jobs(flat, long_rows, long.count, long.width, plan.long_sizes, accumulate, dtype)
    )
    _run((job for it in jobs for job in it), dev, bar)
    for dst, src in zip(sums, long_sums, strict=True):
        dst[long_idx] = src
    return padded


def _padded_stats(num: int, total: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Four aligned arrays of ``max(num, total)`` rows whose rows past ``num`` are 0."""
    out = tuple(aligned_empty(max(num, total), dtype) for _ in range(4))
    for f in out:
        f[num:] = 0
    return out


def _use_native(engine: str, dev: _Devices) -> bool:
    """Whether host data go to the native kernel (see ``fit``'s ``engine``)."""
    if engine not in ("auto", "native", "xla"):
        raise ValueError(f"fit: engine must be 'auto', 'native' or 'xla'; got {engine!r}")
    if engine == "xla":
        return False
    if engine == "native":
        if not native.available():
            raise ValueError(f"fit: engine='native', but {native.reason()}")
        return True
    return dev.platform == "cpu" and native.available()


def _compute_dtype(data_dtype: np.dtype, dtype: Any) -> np.dtype:
    """float32/float64 per DESIGN §3; float64 without x64 falls back to float32 with a warning."""
    x64 = bool(jax.config.jax_enable_x64)
    if dtype is not None:
        want = np.dtype(dtype)
        if want.kind != "f":
            raise ValueError(f"fit: dtype must be a floating dtype; got {want}")
    elif data_dtype.kind == "f":
        want = data_dtype
    else:
        want = np.dtype(np.float64 if x64 else np.float32)
    if want.itemsize < 4:
        want = np.dtype(np.float32)
    if want == np.float64 and not x64:
        warnings.warn(
            "fit: float64 data with jax_enable_x64 off is computed in float32; enable x64 "
            "(JAX_ENABLE_X64=1) for float64 results",
            UserWarning,
            stacklevel=3,
        )
        want = np.dtype(np.float32)
    return want


def _progress_bar(enabled: bool, total: int) -> Any:
    class _NoBar:
        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    if not enabled:
        return _NoBar()
    try:  # tqdm is in the `cli` extra, not a core dependency
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, file=sys.stderr, unit="block", desc="jaxvi.fit")


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
            reads the values in place on every CPU core (no buckets, no copies); ``"xla"``:
            length buckets of padded blocks reduced on the devices (the accelerator path;
            ``min_width`` and ``max_width`` apply); ``"auto"``: native when every device is a
            CPU and the kernel is available, else XLA.

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
    is_flat = isinstance(prepared, Flat)
    num = prepared.starts.shape[0] if is_flat else prepared[0].shape[0]
    data_dtype = prepared.values.dtype if is_flat else np.result_type(*prepared)
    dt = _compute_dtype(data_dtype, dtype)
    params = tuple(
        None if value is None else check_param(name, value, num, validate=validate, dtype=dt)
        for name, value in (("lam", lam), ("sigma", sigma), ("theta", theta))
    )

    dev = _Devices(devices)
    if dev.num_processes > 1:  # a shared scalar may differ between processes: one per row
        params = tuple(None if p is None else np.broadcast_to(p, (num,)) for p in params)
    plan = ChunkPlan(chunk_size, dev.num_local)
    ladder(min_width, max_width)  # checks the options as the user gave them
    widths = ladder(min_width, plan.widest(max_width, min_width))
    on_host = is_flat and _use_native(engine, dev)
    if is_flat and not on_host:
        plan.bucket(prepared, widths, by_length=not _raw_windows(prepared, dt))
    plan.agree(dev.agree, num)
    chunks = len(native_chunks(prepared, chunk_size)) if on_host else 0
    bar = _progress_bar(progress, plan.num_jobs + chunks)
    try:
        if on_host:
            stats = native_stats(prepared, dt, chunk_size, sum(plan.solve_sizes), bar)
        elif is_flat:
            stats = _reduce(prepared, dt, widths, plan, dev, bar)
        if is_flat:
            if validate:  # NaN and inf, found through the sums before anything is solved
                with np.errstate(invalid="ignore"):
                    finite = np.isfinite(stats[1][:num]) & np.isfinite(stats[2][:num])
                check_finite_values(prepared, finite, chunk_size)
        else:  # statistics as given, their shift rounded to dt and the sums adjusted to it
            with np.errstate(all="ignore"):
                stats = rebase(*(np.asarray(f, np.float64) for f in prepared), dt)
        out = Solution(*(np.empty(num, dt) for _ in Solution._fields))
        _run(_solve_jobs(stats, params, plan.solve_sizes, out, dt, exact), dev, bar)
    finally:
        bar.close()
    return out
