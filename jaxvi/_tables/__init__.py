"""The table engine: files and DataFrames through DuckDB, to checked batches of statistics."""
