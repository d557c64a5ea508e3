"""Invocation distance, live: steps until each agent's next LLM call, for agent-aware serving memory.

Two questions add up: how many steps until the policy runs the agent again (`Scheduler.wait_steps`: ready now 0;
blocked behind agents k steps back, k; under a barrier, its place in the order), and, once it runs, how many of its
own steps until it calls the LLM. The second is the agent's published plan (`StepContext.plan`: walking, asleep),
capped by the spatial bound when `spatial` is on (someone could come into perception range and start a
conversation sooner); an agent without a plan may call at its very next step (0).

A minimum of the sources would be wrong on purpose: "ready now" (0) would hide a plan that says "asleep for 300
steps", and ready agents are most agents under out-of-order scheduling. Nothing here is pushed on a commit; the
memory policy pulls `distance(agent)` when it ranks, so the engine pays nothing for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from metropolis.scheduling.base import Scheduler
from metropolis.scheduling.table import AgentView, Status
from metropolis.world.spatial import Pos
from metropolis.world.world import World

INF = math.inf


class PlanLike(Protocol):
    """A published plan (the engine's `Plan`): the step of the agent's next LLM call."""

    @property
    def next_call(self) -> int: ...


class PlanBook:
    """Each agent's latest published plan; a plan whose step has passed says nothing any more."""

    def __init__(self, table: AgentView) -> None:
        self.table = table
        self._next: dict[int, int] = {}

    def publish(self, agent: int, next_call: int) -> None:
        self._next[agent] = next_call

    def distance(self, agent: int) -> float:
        nxt = self._next.get(agent)
        if nxt is None:
            return INF
        left = nxt - self.table.step[agent]
        if left < 0:  # the plan is over and the agent has not said what comes next
            del self._next[agent]
            return INF
        return float(left)


class SpatialBound:
    """The earliest step at which another agent could come into perception range: ceil((d - R) / 2V).

    Both agents may walk towards each other, so a gap closes at 2V per step. The nearest other agent is found
    by querying the table's spatial index in doubling radii; agents that are done never come closer.
    `distance(agent, cap)` answers min(bound, cap), looking only as far as can matter: a caller that takes the
    minimum with its own estimate (a plan `cap` steps away) need not look further.

    A prefetch pass asks this for every agent between two commits, so where the metric can find every agent's
    nearest neighbour at once (`nearest_all`: a k-d tree), that is done once per commit (the table's `version`)
    and kept until the next one; other metrics query per agent.
    """

    def __init__(self, world: World, table: AgentView, max_radius: float = 4096.0) -> None:
        self.table = table
        self.distance_of = world.metric.distance
        self.R, self.V = world.perception_radius, world.max_velocity
        self.max_radius = max_radius
        self._bulk: Callable[[list[Pos]], list[float] | None] | None = getattr(world.metric, "nearest_all", None)
        self._cached_at = -1
        self._near: list[float] = []

    def nearest(self, agent: int, within: float | None = None) -> float:
        """Distance to the nearest other live agent (inf if none), looking no further than `within`."""
        limit = self.max_radius if within is None else min(within, self.max_radius)
        known = self._nearest_of_all(agent)
        if known is not None:
            return known if known <= limit else INF
        radius = self.R + 2 * self.V
        while True:
            r = min(radius, limit)
            best = self._nearest_within(agent, r)
            if best != INF or r >= limit:
                return best
            radius *= 2

    def _nearest_of_all(self, agent: int) -> float | None:
        """The live agent's nearest-neighbour distance from the per-commit table, or None without one."""
        table = self.table
        if self._bulk is None or table.status[agent] is Status.DONE:
            return None
        if self._cached_at != table.version:
            live = [a for a, st in enumerate(table.status) if st is not Status.DONE]
            found = self._bulk([table.pos[a] for a in live])
            if found is None:  # this metric cannot (e.g. walking distance between towns): query per agent
                self._bulk = None
                return None
            self._near = [INF] * len(table.step)
            for a, d in zip(live, found, strict=True):
                self._near[a] = d
            self._cached_at = table.version
        return self._near[agent]

    def _nearest_within(self, agent: int, radius: float) -> float:
        table = self.table
        pa, dist, status, pos = table.pos[agent], self.distance_of, table.status, table.pos
        best = INF
        for b in table.near(pa, radius):
            if b != agent and status[b] is not Status.DONE:
                best = min(best, dist(pa, pos[b]))
        return best if best <= radius else INF

    def distance(self, agent: int, cap: float = INF) -> float:
        if self.table.status[agent] is Status.DONE:
            return INF
        R, V = self.R, self.V
        # ceil((d - R) / 2V) < cap exactly when d < R + 2V cap (cap whole steps): nothing further can matter.
        d = self.nearest(agent, None if cap == INF else R + 2 * V * cap)
        if d == INF:
            return cap
        return float(min(cap, max(0, math.ceil((d - R) / (2 * V)))))


class InvocationDistance:
    """Steps until `agent`'s next LLM call. Attach `on_plan` to the simulation's plan listeners."""

    def __init__(self, world: World, sched: Scheduler, *, spatial: bool = False) -> None:
        self.sched = sched
        self.plans = PlanBook(sched.table)
        self.spatial = SpatialBound(world, sched.table) if spatial else None

    def on_plan(self, agent: int, plan: PlanLike) -> None:
        """A plan replaces the agent's old one; an agent that publishes none keeps its old plan, which expires by
        itself at its step (a partner's reply inside a conversation changes no plan)."""
        self.plans.publish(agent, plan.next_call)

    def distance(self, agent: int) -> float:
        wait = self.sched.wait_steps(agent)
        if wait == INF:
            return INF  # done
        own = self.plans.distance(agent)
        if own == INF:
            own = 0.0
        elif self.spatial is not None:
            own = self.spatial.distance(agent, cap=own)
        return wait + own
