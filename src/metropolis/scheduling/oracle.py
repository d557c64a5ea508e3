"""`oracle`: schedule a recorded run by the dependencies it really had, the bound for any conservative policy.

From a recorded run we know, for every agent-step, whom the agent observed and whom it wrote into. Agent-step (i, s)
reads the states that (j, s - 1) produced for each observed j, and its own (i, s - 1). Agents that interacted at
step s ran as one unit then, so they run as one unit here too. Nothing else orders the steps.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from metropolis.scheduling.base import Scheduler
from metropolis.scheduling.table import AgentView, Status
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.world import World


class StepDependency(Protocol):
    """What one recorded agent-step touched: the agents it observed and the ones it wrote into.

    The engine's `StepRecord` and a trace's step rows both have these fields.
    """

    @property
    def agent(self) -> int: ...

    @property
    def step(self) -> int: ...

    @property
    def observed(self) -> tuple[int, ...]: ...

    @property
    def partners(self) -> tuple[int, ...]: ...


@dataclass(slots=True)
class DependencyGraph:
    """Units per step (agents that interacted form one), and for each unit the units it waits for."""

    units: list[WorkUnit]
    waits_for: list[list[int]]  # unit index -> indices of the units it depends on
    agents: int
    steps: int

    @classmethod
    def from_steps(cls, records: Iterable[StepDependency], agents: int, steps: int) -> DependencyGraph:
        by_step: list[dict[int, StepDependency]] = [{} for _ in range(steps)]
        for r in records:
            if not (0 <= r.agent < agents and 0 <= r.step < steps):
                raise ValueError(
                    f"recorded agent-step ({r.agent}, {r.step}) is outside {agents} agents x {steps} steps"
                )
            by_step[r.step][r.agent] = r
        units: list[WorkUnit] = []
        unit_of: list[list[int]] = []  # step -> agent -> unit index
        waits_for: list[list[int]] = []
        for s in range(steps):
            row = by_step[s]
            members_of = _components(agents, row.values())
            here = [0] * agents
            for members in members_of:
                idx = len(units)
                units.append(WorkUnit(s, members, members))
                for a in members:
                    here[a] = idx
                deps: set[int] = set()
                if s > 0:
                    prev = unit_of[s - 1]
                    for a in members:
                        deps.add(prev[a])
                        rec = row.get(a)
                        if rec is not None:
                            deps.update(prev[j] for j in rec.observed)
                waits_for.append(sorted(deps))
            unit_of.append(here)
        return cls(units, waits_for, agents, steps)


def _components(agents: int, records: Iterable[StepDependency]) -> list[tuple[int, ...]]:
    """Connected components of the `partners` relation among all agents (singletons included), by lowest member."""
    parent = list(range(agents))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for r in records:
        for p in r.partners:
            ra, rb = find(r.agent), find(p)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for a in range(agents):
        groups.setdefault(find(a), []).append(a)
    return [tuple(g) for _, g in sorted(groups.items())]


class OracleScheduler(Scheduler):
    """Dispatches each recorded unit as soon as the units it really depended on have committed."""

    name = "oracle"
    replays_recorded = True

    def __init__(self, world: World, table: AgentView, graph: DependencyGraph, *, priority: bool = True) -> None:
        if graph.agents != len(table.step):
            raise ValueError(f"the dependency graph has {graph.agents} agents, the run {len(table.step)}")
        if graph.steps != table.until:
            raise ValueError(f"the dependency graph has {graph.steps} steps, the run {table.until}")
        self.graph = graph
        super().__init__(world, table, priority=priority)

    def _start(self) -> None:
        g = self.graph
        self._pending = [len(w) for w in g.waits_for]
        self._dependents: list[list[int]] = [[] for _ in g.units]
        for u, deps in enumerate(g.waits_for):
            for d in deps:
                self._dependents[d].append(u)
        self._by_key = {(x.step, x.members): i for i, x in enumerate(g.units)}
        self._heap: list[tuple[int, int, int]] = []
        self._seq = itertools.count()
        for u, n in enumerate(self._pending):
            if n == 0:
                self._push(u)

    def _push(self, u: int) -> None:
        key = self.graph.units[u].step if self.priority else 0
        heapq.heappush(self._heap, (key, next(self._seq), u))

    def pop_ready(self) -> WorkUnit | None:
        if not self._heap:
            return None
        _, _, u = heapq.heappop(self._heap)
        unit = self.graph.units[u]
        steps, status = self.table.step, self.table.status
        for a in unit.members:
            if status[a] is not Status.WAITING or steps[a] != unit.step:
                raise RuntimeError(f"oracle unit {unit} is not runnable: agent {a} is at step {steps[a]}")
        return unit

    def complete(self, unit: WorkUnit) -> None:
        for d in self._dependents[self._by_key[(unit.step, unit.members)]]:
            self._pending[d] -= 1
            if self._pending[d] == 0:
                self._push(d)
