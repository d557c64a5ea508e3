"""The live invocation distance of the engine, and Belady's MIN replayed agent by agent."""

from __future__ import annotations

import math

from metropolis.agents.randomwalk import RandomWalker
from metropolis.engine.simulation import Simulation
from metropolis.llm.types import LLMRequest
from metropolis.memory import StateKind
from metropolis.memory.estimators import PLAN_HINT, PlanHint
from metropolis.memory.replay import ReplayBeladyPolicy
from metropolis.memory.state import StateSpec
from metropolis.memory.tiers import Entry
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World


def sim(scheduler: str = "metropolis") -> Simulation:
    world = World(tilemap=TileMap.open(40, 40), perception_radius=4.0, max_velocity=1.0)
    agents = [RandomWalker(f"w{i}", (i * 12, 0)) for i in range(3)]
    return Simulation(world, agents, steps=50, scheduler=scheduler)


def test_plan_hints_add_to_the_scheduler_wait() -> None:
    s = sim()
    s.track_distances()
    assert [s.invocation_distance(a) for a in range(3)] == [0.0, 0.0, 0.0]  # no plan: may call next step
    s.observe_request(LLMRequest("w1", 0, "plan", agent_id=1, hints={PLAN_HINT: PlanHint(0, 30)}))
    s.observe_request(LLMRequest("w2", 0, "plan", agent_id=2, hints={PLAN_HINT: {"step": 0, "next_call": 7}}))
    assert [s.invocation_distance(a) for a in range(3)] == [0.0, 30.0, 7.0]
    s.observe_request(LLMRequest("w2", 0, "reply", agent_id=2))  # a reply without a plan keeps the plan
    assert s.invocation_distance(2) == 7.0


def test_the_distance_counts_down_as_the_agent_steps_and_a_past_plan_expires() -> None:
    s = sim("lockstep")
    s.track_distances()
    s.observe_request(LLMRequest("w0", 0, "plan", agent_id=0, hints={PLAN_HINT: PlanHint(0, 2)}))
    for _ in range(3):  # one lockstep step of all three agents
        unit = s.pop_ready()
        assert unit is not None
        s.scheduler.complete(unit, [s.scheduler.pos[a] for a in unit.members])
    assert s.invocation_distance(0) == 1.0
    for _ in range(6):
        unit = s.pop_ready()
        assert unit is not None
        s.scheduler.complete(unit, [s.scheduler.pos[a] for a in unit.members])
    assert s.invocation_distance(0) == 0.0  # at step 3 the plan (next call at 2) is over


def entry(agent: int) -> Entry:
    return Entry(StateSpec(agent, StateKind.LORA, 1))


def test_replayed_belady_follows_each_agent_through_the_recorded_sequence() -> None:
    recorded = [0, 1, 2, 0, 1, 0]
    p = ReplayBeladyPolicy(recorded)
    assert [p.next_use(a) for a in (0, 1, 2, 3)] == [0.0, 1.0, 2.0, math.inf]
    p.observe(0, 0.0)
    p.observe(1, 0.0)
    # next uses: agent 0 at 3, agent 1 at 4, agent 2 at 2: evict 1 first (furthest), then 0, then 2
    order = sorted([entry(0), entry(1), entry(2)], key=lambda e: p.eviction_key(e, 0.0))
    assert [e.agent for e in order] == [1, 0, 2]
    assert p.next_need(2, 0.0) == 1.0  # recorded position 2, one after the latest seen (1)
    p.observe(2, 0.0)
    p.observe(2, 0.0)  # more accesses than recorded: never needed again
    assert p.next_use(2) == math.inf
