"""One process of the two-process ``jax.distributed`` run of ``tests/test_multihost.py``.

Usage: ``python multihost_worker.py PORT PROCESS_ID INPUT.npz OUTPUT.npz``. The input holds
every dataset (``values``, ``offsets``, ``lam``), ``split``, the first dataset of process 1, and
``sigma``, one scalar per process; each process fits only its own share and saves its rows.
"""

from __future__ import annotations

import sys


def main(port: int, process_id: int, inputs: str, output: str) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=2,
        process_id=process_id,
        initialization_timeout=60,
    )
    import numpy as np

    import jaxvi._fit.blocks
    import jaxvi._fit.fit
    from jaxvi import Ragged, fit

    # Every block must be one global array over both processes' devices: the solve's blocks on
    # both engines, and the XLA engine's row sums.
    global_blocks = []

    def spying(kernel):
        def spy(first, *args, **kw):
            global_blocks.append(
                len(first.sharding.device_set) == 4 and not first.is_fully_addressable
            )
            return kernel(first, *args, **kw)

        return spy

    jaxvi._fit.blocks._row_sums = spying(jaxvi._fit.blocks._row_sums)
    jaxvi._fit.fit._solve_stats = spying(jaxvi._fit.fit._solve_stats)

    assert jax.process_count() == 2 and jax.device_count() == 4
    data = np.load(inputs)
    offsets, lam, split = data["offsets"], data["lam"], int(data["split"])
    lo, hi = (0, split) if process_id == 0 else (split, len(offsets) - 1)
    mine = offsets[lo : hi + 1]
    local = Ragged(data["values"][mine[0] : mine[-1]], mine - mine[0])
    sigma = float(data["sigma"][process_id])  # a scalar that differs between the processes
    chunk = int(data["chunk_size"])
    results = {}
    for engine in ("native", "xla"):
        sol = fit(local, lam[lo:hi], sigma, chunk_size=chunk, max_width=64, engine=engine)
        results.update({f"{engine}_{k}": v for k, v in sol._asdict().items()})
    np.savez(output, global_blocks=np.array(global_blocks), **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
