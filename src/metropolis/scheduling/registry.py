"""Schedulers by name; an unknown name lists the valid ones."""

from __future__ import annotations

from metropolis.registry import lookup
from metropolis.scheduling.base import Scheduler
from metropolis.scheduling.lockstep import LockstepScheduler
from metropolis.scheduling.metropolis import MetropolisScheduler
from metropolis.scheduling.serial import SerialScheduler
from metropolis.scheduling.speculative import SpeculativeScheduler
from metropolis.scheduling.table import AgentView
from metropolis.world.world import World

SCHEDULERS: dict[str, type[Scheduler]] = {
    cls.name: cls for cls in (SerialScheduler, LockstepScheduler, MetropolisScheduler, SpeculativeScheduler)
}


def scheduler_names() -> list[str]:
    return list(SCHEDULERS)


def make_scheduler(name: str, world: World, table: AgentView, *, priority: bool = True) -> Scheduler:
    if name == "oracle":
        raise ValueError("the oracle schedules a recorded run: build OracleScheduler from its DependencyGraph")
    return lookup(SCHEDULERS, name, "scheduler")(world, table, priority=priority)
