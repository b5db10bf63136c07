"""The simulation-study workflow: simulate and fit files, the report's numbers and its plots."""
