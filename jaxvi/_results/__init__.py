"""Statistics to results: the table kernel, fit_table, and result files written and read."""
