"""Scheduling policies: event-driven controllers that decide which agent clusters may run now."""

from metropolis.scheduling.base import Scheduler
from metropolis.scheduling.checker import CausalityChecker, CausalityViolation
from metropolis.scheduling.dispatch import Dispatcher
from metropolis.scheduling.oracle import DependencyGraph, OracleScheduler
from metropolis.scheduling.registry import make_scheduler, scheduler_names
from metropolis.scheduling.table import AgentTable, AgentView, Status
from metropolis.scheduling.unit import WorkUnit

__all__ = [
    "AgentTable",
    "AgentView",
    "CausalityChecker",
    "CausalityViolation",
    "DependencyGraph",
    "Dispatcher",
    "OracleScheduler",
    "Scheduler",
    "Status",
    "WorkUnit",
    "make_scheduler",
    "scheduler_names",
]
