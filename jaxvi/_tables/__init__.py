"""Tables and files: DuckDB for data → statistics, atomic writers, simulation studies."""
