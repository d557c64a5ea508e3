"""A short live run with the real local model (SmolLM2-135M on llama.cpp): whatever it answers, the run completes.

Two Smallville personas who wake at 6 am, 30 steps from 5:59 am: both wake, plan and start their first task.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools

import pytest

from metropolis.agents.genagent import GenAgentConfig, Timeline, build_town_agents
from metropolis.engine.simulation import Simulation
from metropolis.llm.local_server import unavailable_reason
from metropolis.runtime.realtime import AsyncioRuntime

MISSING = unavailable_reason()
PENDING = [
    m
    for m in ("metropolis.llm.local_server", "metropolis.llm.client", "metropolis.world.smallville")
    if importlib.util.find_spec(m) is None
]
START = 5 * 3600 + 59 * 60
NAMES = ("Isabella Rodriguez", "Latoya Williams")

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(MISSING is not None, reason=f"{MISSING}"),
    pytest.mark.skipif(bool(PENDING), reason=f"not merged into this checkout yet: {', '.join(PENDING)}"),
]


def test_two_agents_wake_and_plan_with_the_local_model() -> None:
    from metropolis.llm.client import OpenAIClient
    from metropolis.llm.local_server import LocalModelServer
    from metropolis.world.smallville import load_smallville

    town = load_smallville()
    town.personas = [p for p in town.personas if p.name in NAMES]
    cfg = GenAgentConfig(embedder="hash", max_retries=0, tokens_plan=80, tokens_schedule=100, tokens_decompose=80)
    agents = build_town_agents(town, 2, cfg, seed=0)
    sim = Simulation(town.world, agents, until=30, scheduler="metropolis", start_seconds=START, keep_history=True)
    timeline = Timeline(START, town.world.seconds_per_step)
    sim.listeners.append(timeline)

    async def go() -> None:
        with LocalModelServer() as server:
            async with OpenAIClient(server.endpoint()) as client:
                await AsyncioRuntime(sim, client).run()

    asyncio.run(go())
    for i, agent in enumerate(agents):
        calls = sum(timeline.calls.get(agent.name, {}).values())
        assert 3 <= calls == agent.stats.answers == agent.stats.parsed + agent.stats.fallbacks
        history = sim.history(i)
        assert history[0].action.startswith("sleeping") and not history[-1].action.startswith("sleeping")
        assert all(town.world.check_move(a.pos, b.pos) is None for a, b in itertools.pairwise(history))
        assert agent.day_plan and agent.schedule.get(6) and agent.task is not None
