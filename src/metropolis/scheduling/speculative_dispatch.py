"""The dispatcher of the `speculative` policy: the table's one writer, with one more verb, `abort`.

It differs from `Dispatcher` in two places. A speculative dispatch is not shown to the observers (the causality
checker would rightly call it blocked): they see the unit's commit, which happens only once it is validated. (Nor
is a unit freed by its blockers' routes, which the checker does not know; the watchers do not see it: no bet.) And
a commit first asks the policy which speculative units the arriving agents conflict with; their members go back
to waiting in the table before the policy scans the arrivals, so the two are coupled as `serial` would have them,
and the engine is told (`on_conflict`) to undo the run.

What the observers do not see, its `watchers` do (the trace's scheduler columns, the viewer): each unit dispatched
ahead of its blockers, and each undone. They only record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from metropolis.scheduling.dispatch import Dispatcher
from metropolis.scheduling.speculative import SpeculativeScheduler
from metropolis.scheduling.table import AgentTable
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.spatial import Pos


class SpeculationWatcher(Protocol):
    """Told of each speculative dispatch and of each undone unit (whose members will run the step again)."""

    def on_speculate(self, unit: WorkUnit) -> None: ...

    def on_undo(self, unit: WorkUnit) -> None: ...


class SpeculativeDispatcher(Dispatcher):
    policy: SpeculativeScheduler

    def __init__(
        self,
        table: AgentTable,
        policy: SpeculativeScheduler,
        on_conflict: Callable[[WorkUnit], None] | None = None,
    ) -> None:
        super().__init__(table, policy)
        self.on_conflict = on_conflict
        self.watchers: list[SpeculationWatcher] = []

    def pop_ready(self) -> WorkUnit | None:
        unit = self.policy.pop_ready()
        if unit is not None:
            self.table.start(unit.members)
            self.units_dispatched += 1
            if not self.policy.is_speculative(unit):
                for obs in self.observers:
                    obs.on_dispatch(unit)
            elif not self.policy.promised(unit):
                for watcher in self.watchers:
                    watcher.on_speculate(unit)
        return unit

    def complete(
        self, unit: WorkUnit, positions: Sequence[Pos], still_until: Sequence[int | None] | None = None
    ) -> None:
        self._advance(unit, positions, still_until)
        for undone in self.policy.conflicts(unit):
            self.abort(undone)
        for obs in self.observers:
            obs.on_commit(unit)
        self.policy.complete(unit)
        seen: set[WorkUnit] = set()
        for agent in unit.members:
            chained = self.policy.chained_on(agent)
            if chained is None or chained in seen:
                continue
            seen.add(chained)
            arrived = self.policy.adopt(chained)  # refused, it changed nothing
            if arrived is not None:
                self.table.start(arrived)  # they have been running on the strength of this commit
                continue
            self.drop_chain(chained)
            if self.on_conflict is not None:
                self.on_conflict(chained)

    def abort(self, unit: WorkUnit) -> None:
        """Undo the dispatch of a speculative unit: its members wait again, held until `release`."""
        self.table.stop(self.policy.joined_in(unit))
        self.policy.abort(unit)
        self._undone(unit)
        if self.on_conflict is not None:
            self.on_conflict(unit)

    def drop_chain(self, unit: WorkUnit) -> None:
        """A step chained on an undone one is undone with it (the rows of the agents that ran on the held result
        never saw it; those that joined it wait again)."""
        self.table.stop(self.policy.joined_in(unit))
        self.policy.drop_chain(unit)
        self._undone(unit)

    def _undone(self, unit: WorkUnit) -> None:
        for watcher in self.watchers:
            watcher.on_undo(unit)

    def release(self, unit: WorkUnit) -> None:
        """The undone run of `unit` has unwound (its private state restored): its members may run again."""
        self.policy.release(unit)
