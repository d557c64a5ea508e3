"""The one writer of a run's agent table: it marks dispatched units running and commits finished steps, then
tells the policy and the observers. The simulation drives it; the scheduler benchmark and the tests drive it bare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mypy_extensions import mypyc_attr

from metropolis.scheduling.base import Scheduler
from metropolis.scheduling.registry import make_scheduler
from metropolis.scheduling.table import AgentTable
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.spatial import Pos
from metropolis.world.world import World


class UnitObserver(Protocol):
    """Sees every dispatch and commit, after the table changed; the causality checker is one."""

    def on_dispatch(self, unit: WorkUnit) -> None: ...

    def on_commit(self, unit: WorkUnit) -> None: ...


@mypyc_attr(allow_interpreted_subclasses=True)
class Dispatcher:
    @classmethod
    def of(
        cls, policy: str, world: World, positions: Sequence[Pos], until: int, *, priority: bool = True
    ) -> Dispatcher:
        """A named policy over a fresh table of agents at `positions`, running steps 0 to `until`."""
        table = AgentTable(world, positions, until)
        return cls(table, make_scheduler(policy, world, table, priority=priority))

    def __init__(self, table: AgentTable, policy: Scheduler) -> None:
        if policy.table is not table:
            raise ValueError("the policy was built over another agent table")
        self.table = table
        self.policy = policy
        self.observers: list[UnitObserver] = []
        self.units_dispatched = 0

    def pop_ready(self) -> WorkUnit | None:
        unit = self.policy.pop_ready()
        if unit is not None:
            self.table.start(unit.members)
            self.units_dispatched += 1
            for obs in self.observers:
                obs.on_dispatch(unit)
        return unit

    def complete(
        self, unit: WorkUnit, positions: Sequence[Pos], still_until: Sequence[int | None] | None = None
    ) -> None:
        """The members of `unit` committed `unit.step`; `positions` are their new positions, in member order, and
        `still_until` the steps through which they promised to stand there (None: no promise)."""
        self._advance(unit, positions, still_until)
        for obs in self.observers:
            obs.on_commit(unit)
        self.policy.complete(unit)

    def _advance(self, unit: WorkUnit, positions: Sequence[Pos], still_until: Sequence[int | None] | None) -> None:
        """Move the unit's members one step on in the table: the first half of every dispatcher's commit."""
        members, step = unit.members, unit.step
        if len(positions) != len(members):
            raise ValueError(f"unit of {len(members)} agents completed with {len(positions)} positions")
        if still_until is not None and len(still_until) != len(members):
            raise ValueError(f"unit of {len(members)} agents completed with {len(still_until)} promises to stand")
        # Indexed rather than zipped: compiled, `zip(..., strict=True)` is a call through Python.
        table = self.table
        for i in range(len(members)):
            table.advance(members[i], step, positions[i], None if still_until is None else still_until[i])

    def done(self) -> bool:
        return self.table.done()
