"""jaxvi on Dask: :func:`fit_table` for long tables beyond one machine.

Takes Dask collections (or paths Dask reads) and returns a Dask collection, on whatever
scheduler Dask is configured with; it never starts a cluster. ``import jaxvi.dask`` imports
Dask, not JAX.

Examples:
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> import jaxvi.dask  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2) as cluster, Client(cluster):  # doctest: +SKIP
    ...     results = jaxvi.dask.fit_table("s3://bucket/runs/", lam=1.0)
    ...     results.to_parquet("results/")
"""

from __future__ import annotations

try:  # Dask's collections are the interface: without them there is nothing to offer
    import dask.dataframe  # noqa: F401
except ImportError as err:  # pragma: no cover - the dask extra is installed in the tests
    raise ImportError('jaxvi.dask needs Dask; pip install "jaxvi[dask]"') from err

from jaxvi._dask.graph import fit_table as fit_table

__all__ = ["fit_table"]
