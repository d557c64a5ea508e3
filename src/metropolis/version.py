"""The package's version, in a module of its own: what a run records (cli/run_report.py) reads it from here
without importing the package root (which would close a cycle through `metropolis.simulate`)."""

__version__ = "0.1.0"
