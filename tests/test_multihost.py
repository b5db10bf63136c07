"""Two ``jax.distributed`` processes on 127.0.0.1 (CPU, gloo collectives), each holding part of
the datasets, reproduce the single-process ``fit`` (see ``tests/multihost_worker.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import OPTS, make_datasets, to_ragged

from jaxvi import Solution, fit

WORKER = Path(__file__).with_name("multihost_worker.py")
TIMEOUT = 240  # seconds for both processes, compilation included, on a loaded machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_reproduce_the_single_process_results(tmp_path):
    datasets = make_datasets(7, 120)
    # Process 0 gets the first 90 datasets, process 1 the last 30 plus a very long one: their
    # bucket counts differ, so they must agree on padded block shapes to run in lockstep.
    rng = np.random.default_rng(8)
    datasets.append(rng.normal(20.0, 1.0, 700).astype(np.float32))
    data = to_ragged(datasets)
    lam = np.linspace(0.5, 4.0, len(datasets)).astype(np.float32)
    inputs = tmp_path / "inputs.npz"
    np.savez(
        inputs,
        values=data.values,
        offsets=data.offsets,
        lam=lam,
        split=90,
        sigma=np.array([1.0, 1.5]),
        chunk_size=OPTS["chunk_size"],
    )

    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(port),
                str(pid),
                str(inputs),
                str(tmp_path / f"{pid}.npz"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for pid in (0, 1)
    ]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=TIMEOUT)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-3000:]

    parts = [np.load(tmp_path / f"{pid}.npz") for pid in (0, 1)]
    for part in parts:
        assert part["global_blocks"].size and part["global_blocks"].all()
    # Each process's scalar σ holds for its own datasets only.
    sigma = np.where(np.arange(len(datasets)) < 90, 1.0, 1.5).astype(np.float32)
    for engine in ("native", "xla"):
        got = Solution(
            *(np.concatenate([p[f"{engine}_{name}"] for p in parts]) for name in Solution._fields)
        )
        want = fit(data, lam, sigma, engine=engine, **OPTS)
        assert got.theta.shape == (len(datasets),)
        for name in Solution._fields:
            np.testing.assert_allclose(
                getattr(got, name), getattr(want, name), rtol=1e-6, err_msg=f"{engine} {name}"
            )
