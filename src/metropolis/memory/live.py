"""The invocation distance the engine exposes live for every agent (`Simulation.invocation_distance`).

Two questions add up: how many steps until the scheduler runs the agent again (ready now: 0; blocked behind
agents k steps back: k; under a barrier: its place in the order), and, once it runs, how many of its own steps
until it calls the LLM. The second is the agent's published plan (walking, asleep: `PlanHint` in the hints of
its last request), capped by the spatial bound when `spatial` is on (someone could come into perception range
and start a conversation sooner); an agent without a plan may call at its very next step (0).

This differs from `MinEstimator` over the same sources on purpose: a minimum lets "ready now" (0) hide a plan
that says "asleep for 300 steps", and ready agents are most agents under out-of-order scheduling.
"""

from __future__ import annotations

import math

from metropolis.llm.types import LLMRequest
from metropolis.memory.estimators import (
    PLAN_HINT,
    DistanceEstimator,
    PlanEstimator,
    SpatialEstimator,
    scheduler_estimator,
)
from metropolis.scheduling.base import Scheduler


class LiveDistance:
    """Steps until `agent`'s next LLM call, from the scheduler's state and the agents' plans."""

    def __init__(self, sched: Scheduler, *, spatial: bool = False) -> None:
        self.sched = sched
        self.scheduled: DistanceEstimator = scheduler_estimator(sched)
        self.plans = PlanEstimator(lambda agent: sched.steps[agent])
        self.spatial = SpatialEstimator(sched) if spatial else None

    def observe(self, request: LLMRequest) -> None:
        """File the plan a request carries in its hints ("plan"); a request without one leaves the old plan,
        which expires by itself at its step (a partner's reply inside a conversation changes no plan)."""
        if request.agent_id is not None and PLAN_HINT in request.hints:
            self.plans.observe(request)

    def distance(self, agent: int) -> float:
        wait = self.scheduled.distance(agent)
        if wait == math.inf:
            return math.inf  # done
        own = self.plans.distance(agent)
        if own == math.inf:
            own = 0.0
        elif self.spatial is not None:
            own = self.spatial.distance(agent, cap=own)
        return wait + own
