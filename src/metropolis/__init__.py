"""Metropolis: out-of-order execution for LLM-powered multi-agent simulation.

`metropolis.simulate(...)` runs agents in one call (`metropolis/api.py`); it is loaded on first use, so importing
a submodule does not pull in the runtimes, the LLM clients and pandas. Importing it first checks that the modules
compiled by `pip install -e .` match their sources (`metropolis/compiled.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metropolis.api import RunConfig, SimulationResult, simulate
    from metropolis.engine.collect import DataCollector

from metropolis import compiled as _compiled
from metropolis.version import __version__ as __version__

_compiled.check()  # before any compiled module loads: a stale build refuses, METROPOLIS_PURE=1 runs the sources

__all__ = ["DataCollector", "RunConfig", "SimulationResult", "simulate"]


def __getattr__(name: str) -> Any:
    if name in ("simulate", "SimulationResult", "RunConfig"):
        from metropolis import api

        return getattr(api, name)
    if name == "DataCollector":
        from metropolis.engine.collect import DataCollector

        return DataCollector
    raise AttributeError(f"module 'metropolis' has no attribute {name!r}")
