"""What every scheduling policy shares: the run's agent table (read-only), clusters, and the wait estimate.

A policy is an event-driven controller: its owner (the simulation) tells it which units finished (`complete`, after
advancing the table) and asks what may run now (`pop_ready`, then marks the unit's members running in the table).
It never looks at a clock or a thread, so the virtual-time, asyncio and distributed runtimes drive the same object,
and it keeps nothing but its readiness logic: steps, positions, status and GVT are the table's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from mypy_extensions import mypyc_attr

from metropolis.scheduling.rules import couple_radius
from metropolis.scheduling.table import AgentView, Status
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.world import World

INF = float("inf")


@mypyc_attr(allow_interpreted_subclasses=True)
class Scheduler(ABC):
    """A scheduling policy over one run's agent table."""

    name: ClassVar[str]
    # Whether the invariant d > R + (|s_A - s_B| - 1) V holds at every commit. Barrier policies break it between
    # barriers and stay correct because nobody runs ahead; out-of-order policies depend on it.
    keeps_invariant: ClassVar[bool] = False
    # Whether the policy orders steps by a recorded run's dependencies (the oracle): live agents that observe
    # would read neighbours it never waited for, so the simulation refuses them.
    replays_recorded: ClassVar[bool] = False
    # Whether every unit it dispatches can already see all it may observe: no agent still behind a member can
    # come within R of it by the member's step (metropolis: such an agent blocks it). The engine's neighbour
    # query then reads only the agents that reached the step, and needs no check of those behind.
    dispatches_clear: ClassVar[bool] = False

    def __init__(self, world: World, table: AgentView, *, priority: bool = True) -> None:
        self.world = world
        self.table = table
        self.metric = world.metric
        self.R = world.perception_radius
        self.V = world.max_velocity
        self.couple_radius = couple_radius(self.R, self.V)
        self.until = table.until
        self.priority = priority  # lowest step first in the dispatch order
        self._start()

    @abstractmethod
    def _start(self) -> None:
        """Set up the policy's own state."""

    # -- the verbs the owner uses -----------------------------------------------------------------------------

    @abstractmethod
    def pop_ready(self) -> WorkUnit | None:
        """The next unit that may run now (highest priority first), or None."""

    @abstractmethod
    def complete(self, unit: WorkUnit) -> None:
        """The members of `unit` committed `unit.step` (the table is advanced already): find what became ready."""

    def wait_steps(self, agent: int) -> float:
        """Steps until this policy runs `agent` again (0: ready or running; inf: done).

        The default is how far the agent is ahead of the slowest one; policies that know better say so.
        """
        status = self.table.status[agent]
        if status is Status.DONE:
            return INF
        if status is Status.RUNNING:
            return 0.0
        return float(self.table.step[agent] - self.table.gvt())

    # -- shared machinery -------------------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self.table.step)

    def cluster_of(self, seed: int) -> list[int]:
        """The coupled cluster of `seed`: waiting agents at its step, connected by distance <= R + V."""
        table = self.table
        steps, status, pos = table.step, table.status, table.pos
        step = steps[seed]
        dist = self.metric.distance
        radius = self.couple_radius
        members = [seed]
        seen = {seed}
        i = 0
        while i < len(members):
            a = members[i]
            pa = pos[a]
            for b in table.near(pa, radius):
                if b in seen or steps[b] != step or status[b] is not Status.WAITING:
                    continue
                if dist(pa, pos[b]) <= radius:
                    seen.add(b)
                    members.append(b)
            i += 1
        members.sort()
        return members

    def clusters_at(self, step: int) -> list[list[int]]:
        """Every cluster of waiting agents at `step`, ordered by lowest member."""
        out: list[list[int]] = []
        taken: set[int] = set()
        steps, status = self.table.step, self.table.status
        for agent in range(self.n):
            if agent in taken or steps[agent] != step or status[agent] is not Status.WAITING:
                continue
            cluster = self.cluster_of(agent)
            taken.update(cluster)
            out.append(cluster)
        return out


@mypyc_attr(allow_interpreted_subclasses=True)
class BarrierScheduler(Scheduler):
    """Policies that run every agent of step s, lowest id first, before any of step s + 1 (serial, lockstep)."""

    def _start(self) -> None:
        self._head_gvt = -1
        self._head = 0

    def wait_steps(self, agent: int) -> float:
        """The agent's place in the order (step, agent id), in steps.

        The head is the lowest agent still at GVT, found by an amortised O(1) walk because it only moves forward
        within a step.
        """
        status = self.table.status[agent]
        if status is Status.DONE:
            return INF
        if status is Status.RUNNING:
            return 0.0
        n, gvt = self.n, self.table.gvt()
        order = (self.table.step[agent] - gvt) * n + agent - self._head_agent(gvt)
        return max(0.0, order / n)

    def _head_agent(self, gvt: int) -> int:
        if gvt != self._head_gvt:
            self._head_gvt, self._head = gvt, 0
        steps, n = self.table.step, self.n
        while self._head < n and steps[self._head] > gvt:
            self._head += 1
        return self._head
