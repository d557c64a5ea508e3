"""Scheduling policies: event-driven controllers that decide which agent clusters may run now."""

from metropolis.scheduling.base import Scheduler, Status
from metropolis.scheduling.checker import CausalityChecker, CausalityViolation
from metropolis.scheduling.oracle import DependencyGraph, OracleScheduler
from metropolis.scheduling.registry import make_scheduler, scheduler_names
from metropolis.scheduling.unit import WorkUnit

__all__ = [
    "CausalityChecker",
    "CausalityViolation",
    "DependencyGraph",
    "OracleScheduler",
    "Scheduler",
    "Status",
    "WorkUnit",
    "make_scheduler",
    "scheduler_names",
]
