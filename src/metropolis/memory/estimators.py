"""Invocation distance: how many steps until an agent's next LLM call, from every source that knows something.

Each estimator answers `distance(agent) -> steps` (math.inf: nothing known, or the agent is done) and they
combine by minimum (`MinEstimator`): the earliest moment any source thinks the agent may call is when its
state must be on the GPU. Estimators are pulled: they read the scheduler's public fields when the policy asks,
so a commit costs nothing and a question costs O(1) (plus the agent's blockers, or its neighbours for the
spatial bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from metropolis.llm.types import LLMRequest
from metropolis.scheduling.base import Scheduler, Status, WorkUnit
from metropolis.scheduling.metropolis import MetropolisScheduler
from metropolis.world.spatial import Pos

INF = math.inf


class DistanceEstimator(Protocol):
    def distance(self, agent: int) -> float: ...


def steps_to_seconds(steps: float, seconds_per_step: float) -> float:
    """Distances are in steps; the serving side may want seconds (given an estimate of wall time per step)."""
    if seconds_per_step <= 0:
        raise ValueError(f"seconds per step must be > 0, got {seconds_per_step}")
    return steps * seconds_per_step


class MinEstimator:
    def __init__(self, *estimators: DistanceEstimator) -> None:
        if not estimators:
            raise ValueError("MinEstimator needs at least one estimator")
        self.estimators = estimators

    def distance(self, agent: int) -> float:
        return min(e.distance(agent) for e in self.estimators)


class TableEstimator:
    """Distances pushed in by whoever knows them (a runtime, a replayed trace)."""

    def __init__(self, distances: Mapping[int, float] | None = None) -> None:
        self._d: dict[int, float] = dict(distances or {})

    def update(self, distances: Mapping[int, float]) -> None:
        self._d.update(distances)

    def distance(self, agent: int) -> float:
        return self._d.get(agent, INF)


# -- from the scheduler --------------------------------------------------------------------------------------


class BlockingEstimator:
    """Out-of-order (`metropolis`): ready or running now is 0; blocked behind agents k steps back is k.

    k is the largest gap to a blocker: a blocker at our step can no longer block, so k steps of it always
    release us. It may release us sooner by walking away, so k is the patient estimate DESIGN.md asks for, not
    a bound.
    """

    def __init__(self, sched: Scheduler) -> None:
        if not isinstance(sched, MetropolisScheduler):
            raise TypeError(f"scheduler {sched.name!r} keeps no blocked_by sets; use scheduler_estimator()")
        self.sched = sched
        self.blocked_by = sched.blocked_by

    def distance(self, agent: int) -> float:
        status = self.sched.status[agent]
        if status is Status.DONE:
            return INF
        blockers = self.blocked_by[agent]
        if status is Status.RUNNING or not blockers:
            return 0.0
        steps = self.sched.steps
        mine = steps[agent]
        return float(max(mine - steps[b] for b in blockers))


class BarrierEstimator:
    """Barrier policies (`serial`, `lockstep`): the agent's place in the order (step, agent id), in steps.

    Both run every agent of step s, lowest id first, before any of step s + 1; the head is the lowest agent
    still at the global virtual time, found by an amortised O(1) walk because it only moves forward within a
    step.
    """

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self._gvt = -1
        self._head = 0

    def _head_agent(self) -> int:
        sched = self.sched
        gvt = sched.gvt()
        if gvt != self._gvt:
            self._gvt, self._head = gvt, 0
        steps, n = sched.steps, sched.n
        while self._head < n and steps[self._head] > gvt:
            self._head += 1
        return self._head

    def distance(self, agent: int) -> float:
        sched = self.sched
        status = sched.status[agent]
        if status is Status.DONE:
            return INF
        if status is Status.RUNNING:
            return 0.0
        n = sched.n
        order = (sched.steps[agent] - sched.gvt()) * n + agent - self._head_agent()
        return max(0.0, order / n)


class StepGapEstimator:
    """Any other scheduler: how far the agent is ahead of the slowest one, in steps."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched

    def distance(self, agent: int) -> float:
        status = self.sched.status[agent]
        if status is Status.DONE:
            return INF
        if status is Status.RUNNING:
            return 0.0
        return float(self.sched.steps[agent] - self.sched.gvt())


SCHEDULER_ESTIMATORS: dict[str, Callable[[Scheduler], DistanceEstimator]] = {
    "metropolis": BlockingEstimator,
    "lockstep": BarrierEstimator,
    "serial": BarrierEstimator,
}


def scheduler_estimator(sched: Scheduler) -> DistanceEstimator:
    """The estimator that reads this scheduler's public state; a policy not listed gets the step gap."""
    return SCHEDULER_ESTIMATORS.get(sched.name, StepGapEstimator)(sched)


# -- from the agent's own plan -------------------------------------------------------------------------------

PLAN_HINT = "plan"  # the key of a PlanHint in LLMRequest.hints


@dataclass(frozen=True, slots=True)
class PlanHint:
    """What an agent knows about its next call: published at step `step`, next call at step `next_call`."""

    step: int
    next_call: int

    def __post_init__(self) -> None:
        if self.next_call < self.step:
            raise ValueError(f"plan hint published at step {self.step} names an earlier next call ({self.next_call})")

    @classmethod
    def walking(cls, step: int, tiles: int, velocity: float = 1.0) -> PlanHint:
        """Following a planned path calls no LLM until it ends (unless someone is met: the spatial bound)."""
        return cls(step, step + math.ceil(tiles / velocity))

    @classmethod
    def asleep(cls, step: int, until: int) -> PlanHint:
        return cls(step, until)

    @classmethod
    def from_hints(cls, hints: Mapping[str, Any]) -> PlanHint | None:
        """A PlanHint, or a dict {"step", "next_call"}, under the key "plan" of a request's hints."""
        raw = hints.get(PLAN_HINT)
        if raw is None or isinstance(raw, PlanHint):
            return raw
        if isinstance(raw, Mapping) and {"step", "next_call"} <= raw.keys():
            return cls(int(raw["step"]), int(raw["next_call"]))
        raise ValueError(f"hint {PLAN_HINT!r} must be a PlanHint or a dict with 'step' and 'next_call', got {raw!r}")


class PlanEstimator:
    """Agents' published plans; `step_of(agent)` is the agent's current step (the scheduler's `steps`)."""

    def __init__(self, step_of: Callable[[int], int]) -> None:
        self.step_of = step_of
        self._plans: dict[int, PlanHint] = {}

    def publish(self, agent: int, hint: PlanHint | None) -> None:
        if hint is None:
            self._plans.pop(agent, None)
        else:
            self._plans[agent] = hint

    def observe(self, request: LLMRequest) -> None:
        """Read the plan a request carries; a request without one clears the agent's old plan."""
        if request.agent_id is None:
            raise ValueError(f"request {request.function!r} of {request.agent!r} has no agent_id to file a plan under")
        self.publish(request.agent_id, PlanHint.from_hints(request.hints))

    def distance(self, agent: int) -> float:
        plan = self._plans.get(agent)
        if plan is None:
            return INF
        left = plan.next_call - self.step_of(agent)
        if left < 0:  # the plan is over and the agent has not said what comes next
            del self._plans[agent]
            return INF
        return float(left)


# -- from space ----------------------------------------------------------------------------------------------


class SpatialEstimator:
    """The earliest step at which another agent could come into perception range: ceil((d - R) / 2V).

    Both agents may walk towards each other, so a gap closes at 2V per step. The nearest other agent is found
    by querying the scheduler's spatial index in doubling radii; agents that are done never come closer.
    `distance(agent, cap)` answers min(bound, cap), looking only as far as can matter: a caller that takes
    the minimum with its own estimate (a plan `cap` steps away) need not look further.

    A prefetch pass asks this for every agent between two commits, so where the metric can find every agent's
    nearest neighbour at once (`nearest_all`: a k-d tree), that is done once per commit and kept until the
    next one (the estimator watches commits as a scheduler observer); other metrics query per agent.
    """

    def __init__(self, sched: Scheduler, max_radius: float = 4096.0) -> None:
        self.sched = sched
        self.max_radius = max_radius
        self._bulk: Callable[[list[Pos]], list[float] | None] | None = getattr(sched.metric, "nearest_all", None)
        self._commits = 0
        self._cached_at = -1
        self._near: list[float] = []
        if self._bulk is not None:
            sched.observers.append(self)

    def on_dispatch(self, sched: Scheduler, unit: WorkUnit) -> None:
        """Dispatches move nobody."""

    def on_commit(self, sched: Scheduler, unit: WorkUnit) -> None:
        self._commits += 1

    def nearest(self, agent: int, within: float | None = None) -> float:
        """Distance to the nearest other live agent (inf if none), looking no further than `within`."""
        limit = self.max_radius if within is None else min(within, self.max_radius)
        known = self._nearest_of_all(agent)
        if known is not None:
            return known if known <= limit else INF
        radius = self.sched.R + 2 * self.sched.V
        while True:
            r = min(radius, limit)
            best = self._nearest_within(agent, r)
            if best != INF or r >= limit:
                return best
            radius *= 2

    def _nearest_of_all(self, agent: int) -> float | None:
        """The live agent's nearest-neighbour distance from the per-commit table, or None without one."""
        sched = self.sched
        if self._bulk is None or sched.status[agent] is Status.DONE:
            return None
        if self._cached_at != self._commits:
            live = [a for a, st in enumerate(sched.status) if st is not Status.DONE]
            found = self._bulk([sched.pos[a] for a in live])
            if found is None:  # this metric cannot (e.g. walking distance between towns): query per agent
                self._bulk = None
                return None
            self._near = [INF] * sched.n
            for a, d in zip(live, found, strict=True):
                self._near[a] = d
            self._cached_at = self._commits
        return self._near[agent]

    def _nearest_within(self, agent: int, radius: float) -> float:
        sched = self.sched
        pa, dist, status = sched.pos[agent], sched.metric.distance, sched.status
        best = INF
        for b in sched.index.near(pa, radius):
            if b != agent and status[b] is not Status.DONE:
                best = min(best, dist(pa, sched.pos[b]))
        return best if best <= radius else INF

    def distance(self, agent: int, cap: float = INF) -> float:
        if self.sched.status[agent] is Status.DONE:
            return INF
        R, V = self.sched.R, self.sched.V
        # ceil((d - R) / 2V) < cap exactly when d < R + 2V cap (cap whole steps): nothing further can matter.
        d = self.nearest(agent, None if cap == INF else R + 2 * V * cap)
        if d == INF:
            return cap
        return float(min(cap, max(0, math.ceil((d - R) / (2 * V)))))
