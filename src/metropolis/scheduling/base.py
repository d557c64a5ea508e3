"""What every scheduling policy shares: agents' steps and positions, a spatial index, clusters, and GVT.

A scheduler is an event-driven controller: the runtime tells it which units finished (`complete`) and asks what
may run now (`pop_ready`). It never looks at a clock or a thread, so the virtual-time, asyncio and distributed
runtimes drive the same object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import IntEnum
from typing import ClassVar, Protocol

from metropolis.scheduling.unit import WorkUnit
from metropolis.world.spatial import Pos
from metropolis.world.world import World


class Status(IntEnum):
    WAITING = 0
    RUNNING = 1
    DONE = 2


class DispatchObserver(Protocol):
    """Sees every dispatch and commit; the causality checker is one."""

    def on_dispatch(self, sched: Scheduler, unit: WorkUnit) -> None: ...

    def on_commit(self, sched: Scheduler, unit: WorkUnit) -> None: ...


class Scheduler(ABC):
    """Owns each agent's step counter, latest position and status; policies decide what becomes ready."""

    name: ClassVar[str]
    # Whether the invariant d > R + (|s_A - s_B| - 1) V holds at every commit. Barrier policies break it between
    # barriers and stay correct because nobody runs ahead; out-of-order policies depend on it.
    keeps_invariant: ClassVar[bool] = False

    def __init__(self, world: World, positions: Sequence[Pos], until: int, *, priority: bool = True) -> None:
        if until < 0:
            raise ValueError(f"the number of steps to run must be >= 0, got {until}")
        self.world = world
        self.metric = world.metric
        self.R = world.perception_radius
        self.V = world.max_velocity
        self.couple_radius = self.R + self.V
        self.until = until
        self.priority = priority
        n = len(positions)
        self.steps: list[int] = [0] * n
        self.pos: list[Pos] = list(positions)
        self.status: list[Status] = [Status.DONE if until == 0 else Status.WAITING] * n
        self.index = self.metric.make_index()
        for agent, p in enumerate(self.pos):
            self.index.add(agent, p)
        self._at_step: dict[int, int] = {0: n}
        self._gvt = 0 if n and until else until
        self.finished = n if until == 0 else 0
        self.observers: list[DispatchObserver] = []
        self.dispatched_units = 0
        self._start()

    @abstractmethod
    def _start(self) -> None:
        """Policy hook: set up the policy's own state once the shared state exists."""

    # -- the two verbs a runtime uses --------------------------------------------------------------------------

    @abstractmethod
    def pop_ready(self) -> WorkUnit | None:
        """The next unit that may run now (highest priority first), or None."""

    def complete(self, unit: WorkUnit, positions: Sequence[Pos]) -> None:
        """The members of `unit` committed `unit.step`; `positions` are their new positions, in member order."""
        if len(positions) != len(unit.members):
            raise ValueError(f"unit of {len(unit.members)} agents completed with {len(positions)} positions")
        for agent, new in zip(unit.members, positions, strict=True):
            if self.status[agent] is not Status.RUNNING or self.steps[agent] != unit.step:
                raise RuntimeError(f"agent {agent} completed step {unit.step} it was not running")
            old = self.pos[agent]
            if new != old:
                self.index.move(agent, old, new)
                self.pos[agent] = new
            self._advance(agent)
        for obs in self.observers:
            obs.on_commit(self, unit)
        self._after_complete(unit)

    @abstractmethod
    def _after_complete(self, unit: WorkUnit) -> None:
        """Policy hook: find what the commit made ready."""

    # -- shared machinery -------------------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self.steps)

    def done(self) -> bool:
        return self.finished == len(self.steps)

    def gvt(self) -> int:
        """Global virtual time: the lowest step of any agent."""
        return self._gvt

    def _advance(self, agent: int) -> None:
        s = self.steps[agent]
        self.steps[agent] = s + 1
        self._at_step[s] -= 1
        self._at_step[s + 1] = self._at_step.get(s + 1, 0) + 1
        if s + 1 >= self.until:
            self.status[agent] = Status.DONE
            self.finished += 1
        else:
            self.status[agent] = Status.WAITING
        while self._gvt < self.until and not self._at_step.get(self._gvt):
            self._at_step.pop(self._gvt, None)
            self._gvt += 1

    def _dispatch(self, step: int, members: Sequence[int], group: Sequence[int]) -> WorkUnit:
        unit = WorkUnit(step, tuple(members), tuple(group))
        for agent in unit.members:
            self.status[agent] = Status.RUNNING
        self.dispatched_units += 1
        for obs in self.observers:
            obs.on_dispatch(self, unit)
        return unit

    def cluster_of(self, seed: int) -> list[int]:
        """The coupled cluster of `seed`: waiting agents at its step, connected by distance <= R + V."""
        step = self.steps[seed]
        steps, status, pos = self.steps, self.status, self.pos
        dist = self.metric.distance
        radius = self.couple_radius
        members = [seed]
        seen = {seed}
        i = 0
        while i < len(members):
            a = members[i]
            pa = pos[a]
            for b in self.index.near(pa, radius):
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
        for agent in range(self.n):
            if agent in taken or self.steps[agent] != step or self.status[agent] is not Status.WAITING:
                continue
            cluster = self.cluster_of(agent)
            taken.update(cluster)
            out.append(cluster)
        return out
