"""Benchmarks that the project ships: `metropolis bench ...`."""
