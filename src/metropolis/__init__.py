"""Metropolis: out-of-order execution for LLM-powered multi-agent simulation."""

__version__ = "0.1.0"
