"""The command's side of Dask: a scheduler named on the command line, and a folder of Parquet
parts written atomically.

``--scheduler local`` or ``local:N`` starts a ``LocalCluster`` of N worker processes of one
thread each on 127.0.0.1 (N = the cores when not given), closed when the command ends;
``tcp://HOST:PORT`` connects to a running scheduler (a SLURM, PBS or Kubernetes cluster's).
The results go to a temporary folder beside the target, one part per output partition, each
sorted by id with the run's metadata, and the folder is renamed onto the target only when
every part is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jaxvi._results.signals import raise_if_signalled

__all__ = ["open_scheduler", "quiet_resource_tracker", "write_parts"]


def _workers(spec: str) -> int:
    count = spec.partition(":")[2]
    if not count:
        return os.cpu_count() or 1
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"--scheduler {spec}: need local, local:N with N >= 1, or tcp://HOST:PORT")
    return int(count)


@contextlib.contextmanager
def open_scheduler(
    spec: str, *, announce: bool, worker_env: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (``local``, ``local:N``, ``tcp://HOST:PORT``),
    closed (with its ``LocalCluster``, if it started one) when the block ends;
    ``worker_env``: environment variables of the worker processes it starts."""
    try:
        import distributed
    except ImportError:
        raise ValueError('--scheduler needs Dask; pip install "jaxvi[dask]"') from None
    if spec == "local" or spec.startswith("local:"):
        quiet_resource_tracker()
        cluster = distributed.LocalCluster(
            n_workers=_workers(spec),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,  # a bad dataset is the command's one line, not logs
            env=dict(worker_env or {}),
        )
        with cluster, distributed.Client(cluster) as client:
            if announce:
                print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
            try:
                yield client
            except BaseException:
                _stop_workers(cluster)
                raise
        return
    if not spec.startswith(("tcp://", "tls://", "ucx://", "ws://", "wss://")):
        raise ValueError(f"--scheduler {spec}: need local, local:N or tcp://HOST:PORT")
    try:
        client = distributed.Client(spec, timeout="10s")
    except OSError as err:
        raise ValueError(f"--scheduler {spec}: cannot connect ({err})") from None
    with client:
        if announce:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client


def quiet_resource_tracker() -> None:
    """Keep multiprocessing's resource tracker from warning on the command's stderr.

    The queues through which a ``LocalCluster`` starts its workers hold semaphores, which the
    tracker (a process of its own, started with this one's environment) counts. When a signal
    stops the command, it exits before they are collected, and the tracker, which removes
    them, then warned "There appear to be 2 leaked semaphore objects" after the command's one
    line. A warning filter in ``PYTHONWARNINGS`` silences that one warning there; any the
    user set stays."""
    rule = "ignore:resource_tracker:UserWarning"
    current = os.environ.get("PYTHONWARNINGS", "")
    if rule not in current.split(","):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [current, rule]))


def _stop_workers(cluster: Any) -> None:
    """SIGTERM to the worker processes of a ``LocalCluster`` being given up (a failure, Ctrl-C):
    they remove their folders and exit at once, where asking each to close took 1.6-4 s."""
    import signal

    # The comms that break now are logged, with tracebacks, by distributed, tornado or asyncio;
    # the command's one line says what happened.
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    for nanny in list(cluster.workers.values()):
        # Told first that its worker is going away: a nanny restarts a worker that dies while
        # it runs, and the cluster's close then waited for the new one to start (1-1.5 s).
        nanny.close_gracefully(reason="jaxvi: the command stops")
        pid = getattr(nanny, "pid", None)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _write_part(frame: Any, path: str, metadata: Mapping[str, str]) -> int:
    """One partition's results as one Parquet file with ``metadata``; its number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if pa.types.is_large_string(table.schema.field(0).type):  # as fit_table writes ids
        table = table.set_column(0, table.schema.field(0).name, table.column(0).cast(pa.string()))
    pq.write_table(table.replace_schema_metadata(dict(metadata)), path)
    return table.num_rows


def write_parts(
    client: Any, results: Any, folder: Path, metadata: Mapping[str, str], *, progress: bool
) -> int:
    """Write each partition of ``results`` as ``folder/part-NNNNN.parquet``; the number of
    datasets written. ``progress`` follows the tasks with ``distributed``'s bar (on stderr)."""
    import dask

    parts = results.to_delayed()
    width = max(5, len(str(len(parts))))
    writes = [
        dask.delayed(_write_part)(part, str(folder / f"part-{k:0{width}d}.parquet"), metadata)
        for k, part in enumerate(parts)
    ]
    raise_if_signalled()  # building the graph ran library code that can swallow a signal
    futures = client.compute(writes)
    if progress:
        from distributed import progress as follow

        with contextlib.redirect_stdout(sys.stderr):
            try:
                follow(futures)
            finally:  # the bar ends its line, so that what follows starts on its own
                print(file=sys.stderr)
    return sum(client.gather(futures))
