"""Tables beyond one machine: the statistics and kernel of :func:`jaxvi.fit_table` on Dask.

Per input partition the DuckDB group-by of :mod:`jaxvi._tables.statistics` gives each
dataset's partial statistics (:mod:`jaxvi._dask.partials`); a shuffle by id brings a
dataset's partials together; Chan's merge combines them in a fixed order
(:mod:`jaxvi._dask.merge`); the table kernel solves each output partition
(:mod:`jaxvi._dask.solve`). :mod:`jaxvi._dask.graph` builds that graph from a Dask DataFrame
or from files; :mod:`jaxvi._dask.cluster` is the command's side: a scheduler named on the
command line and an atomic folder of Parquet parts.

Importing this package imports Dask, never JAX: workers import JAX when they first solve.
"""
