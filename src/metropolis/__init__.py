"""Metropolis: out-of-order execution for LLM-powered multi-agent simulation.

`metropolis.simulate(...)` runs agents in one call (`metropolis/api.py`); it is loaded on first use, so importing
a submodule does not pull in the runtimes, the LLM clients and pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metropolis.api import RunConfig, SimulationResult, simulate
    from metropolis.engine.collect import DataCollector

from metropolis.version import __version__ as __version__

__all__ = ["DataCollector", "RunConfig", "SimulationResult", "simulate"]


def __getattr__(name: str) -> Any:
    if name in ("simulate", "SimulationResult", "RunConfig"):
        from metropolis import api

        return getattr(api, name)
    if name == "DataCollector":
        from metropolis.engine.collect import DataCollector

        return DataCollector
    raise AttributeError(f"module 'metropolis' has no attribute {name!r}")
