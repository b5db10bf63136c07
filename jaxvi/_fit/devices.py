"""Devices for ``fit``: the mesh its arrays are sharded over, and the pipeline of jobs.

Every ``(rows, ...)`` array goes to the devices sharded along its first axis (one mesh axis,
``"data"``), across processes too (``jax.make_array_from_process_local_data``). Jobs are
dispatched one ahead of the one being collected, so on an accelerator the host builds block
k+1 while the device computes block k.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["Devices", "Job", "run_jobs"]

Job = tuple[Callable[..., Any], tuple, Callable[[Any], None]]


class Devices:
    """A one-axis mesh over ``devices``; puts process-local blocks and fetches local rows."""

    def __init__(self, devices: Sequence[jax.Device] | None):
        devs = sorted(
            jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id)
        )
        if not devs:
            raise ValueError("fit: devices must not be empty")
        me = jax.process_index()
        self.local = [d for d in devs if d.process_index == me]
        self.num_local = len(self.local)
        platforms = {d.platform for d in devs}
        self.platform = platforms.pop() if len(platforms) == 1 else "mixed"
        self.num_processes = len({d.process_index for d in devs})
        self.sharding = NamedSharding(Mesh(np.array(devs), ("data",)), P("data"))
        # Only the default device: jit itself places NumPy arguments there, through its C++
        # dispatch (0.05 ms per call against 0.5 ms for a device_put of the same arrays; on
        # CPU both adopt an aligned array without a copy).
        self.direct = (
            self.num_processes == 1
            and jax.config.jax_default_device is None  # type: ignore[attr-defined]
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


def run_jobs(jobs: Iterator[Job], dev: Devices, bar: Any) -> None:
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
