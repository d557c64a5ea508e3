"""What the scheduler did with each agent-step, for the trace's scheduler columns and the viewer's scheduler layer.

A `UnitLog` watches the dispatcher: which work unit ran each step and GVT when it was dispatched, and, under the
`speculative` policy, which steps were dispatched ahead of their blockers and how many times each was undone
before it committed. The speculative dispatcher hides its bets from ordinary observers (the causality checker
would rightly call them blocked), so the log also listens to its `watchers`. Listening changes nothing: the log
only records, so no virtual-time figure and no order moves.

Costs: one assignment per member per dispatch, and a dict operation per member per speculative dispatch or undo.
The viewer's server thread reads `ahead` and `recent` while the run writes them; it takes copies with single C
calls (`dict.copy`, `list(deque)`), which the GIL keeps whole.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from metropolis.engine.records import StepRecord
from metropolis.scheduling.speculative_dispatch import SpeculativeDispatcher
from metropolis.scheduling.table import AgentView
from metropolis.scheduling.unit import WorkUnit

if TYPE_CHECKING:
    from metropolis.engine.simulation import Simulation

RECENT = 512  # undone member-steps remembered for a live view (it asks several times a second)


class Dispatched(NamedTuple):
    """How a step was dispatched: its unit (by dispatch order), GVT then, whether it ran ahead of its blockers
    (and was validated: only committed steps are recorded), and how many runs of it were undone before."""

    unit: int
    gvt: int
    speculative: bool = False
    undone: int = 0


class UnitLog:
    """A dispatcher observer (and speculation watcher) that the recorder and the live view ask, as a step
    commits, how it was dispatched (`lookup`)."""

    def __init__(self, table: AgentView, agents: int) -> None:
        self.table = table
        self.current: list[Dispatched | None] = [None] * agents  # each agent's last ordinary dispatch
        self.ahead: dict[tuple[int, int], Dispatched] = {}  # (agent, step) dispatched ahead, not yet committed
        self.undone: dict[tuple[int, int], int] = {}  # (agent, step) -> runs undone, until the step commits
        self.units = 0
        self.speculated = 0  # member-steps dispatched ahead of their blockers
        self.rolled_back = 0  # member-steps undone
        self.recent: deque[tuple[int, int, int]] = deque(maxlen=RECENT)  # (number, agent, step) of the last undone
        self.scheduled: dict[tuple[int, int], Dispatched] = {}  # what `note` kept for the recorder

    @classmethod
    def attach(cls, sim: Simulation) -> UnitLog:
        """A log of `sim`'s dispatcher (and of its speculation, if any): attach before the run starts."""
        log = cls(sim.table, len(sim.agents))
        sim.dispatcher.observers.append(log)
        if isinstance(sim.dispatcher, SpeculativeDispatcher):
            sim.dispatcher.watchers.append(log)
        return log

    # -- the dispatcher's observer ----------------------------------------------------------------------------

    def on_dispatch(self, unit: WorkUnit) -> None:
        seen = Dispatched(self.units, self.table.gvt())
        self.units += 1
        for agent in unit.members:
            self.current[agent] = seen

    def on_commit(self, unit: WorkUnit) -> None:
        pass

    # -- the speculative dispatcher's watcher -----------------------------------------------------------------

    def on_speculate(self, unit: WorkUnit) -> None:
        """`unit` runs ahead of its blockers: keyed by step too, since a lone agent may run its next step on a
        result not yet committed."""
        seen = Dispatched(self.units, self.table.gvt(), True)
        self.units += 1
        self.speculated += len(unit.members)
        for agent in unit.members:
            self.ahead[(agent, unit.step)] = seen

    def on_undo(self, unit: WorkUnit) -> None:
        """A speculative run of `unit` is undone: its members will run the step again."""
        undone = self.undone
        for agent in unit.members:
            key = (agent, unit.step)
            self.ahead.pop(key, None)
            undone[key] = undone.get(key, 0) + 1
            self.rolled_back += 1
            self.recent.append((self.rolled_back, agent, unit.step))

    # -- asked as a step commits --------------------------------------------------------------------------------

    def lookup(self, agent: int, step: int) -> Dispatched | None:
        """How `agent`'s `step`, committing now, was dispatched (None: never seen, e.g. attached midway). Asked
        once per step: what was kept for it is forgotten."""
        key = (agent, step)
        seen = self.ahead.pop(key, None) if self.ahead else None
        if seen is None:
            seen = self.current[agent]
        undone = self.undone.pop(key, 0) if self.undone else 0
        return seen._replace(undone=undone) if undone and seen is not None else seen

    def note(self, record: StepRecord) -> None:
        """Called as `record` commits, before its unit is completed (its unit is still the agent's current one):
        kept in `scheduled` for the recorder's next batch."""
        seen = self.lookup(record.agent, record.step)
        if seen is not None:
            self.scheduled[(record.agent, record.step)] = seen
