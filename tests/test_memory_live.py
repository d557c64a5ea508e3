"""Belady's MIN replayed agent by agent."""

from __future__ import annotations

import math

from metropolis.memory import StateKind
from metropolis.memory.replay import ReplayBeladyPolicy
from metropolis.memory.state import StateSpec
from metropolis.memory.tiers import Entry


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
