"""The demo and the benchmark runner."""
