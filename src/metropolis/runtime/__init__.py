"""Runtimes drive the engine core: in virtual time (discrete events) or in real time (asyncio)."""

from metropolis.kernel import Environment, Event, Process
from metropolis.runtime.realtime import AsyncioRuntime
from metropolis.runtime.report import RunReport
from metropolis.runtime.virtual import VirtualRuntime

__all__ = ["AsyncioRuntime", "Environment", "Event", "Process", "RunReport", "VirtualRuntime"]
