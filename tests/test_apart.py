"""Runs apart (the `speculative` policy's `apart`): a cluster's agents run as separate units, betting that none
touches another, held until the cluster is final, and joined two by two when one does. Always `serial`'s result."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metropolis.agents import WalkerConfig
from metropolis.engine import Simulation
from metropolis.engine.agent import Agent, InteractionError, StepContext
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.runtime import AsyncioRuntime
from metropolis.scheduling.speculative import SpeculativeScheduler, Window
from metropolis.world import World
from metropolis.world.spatial import Pos
from tests.fault_server import FaultServer
from tests.scenarios import finish, outcome, run_shuffled, walker_sim
from tests.test_speculative import BOLD, bold, run_eager, talking_callers, virtual_walkers, worlds

WHOLE = Window(depth=64, share=1.0, budget=1.0, guess=0.0, apart=0)  # bets on blockers only: clusters run whole


def crowded(seed: int, talk: float = 0.4) -> dict[str, Any]:
    return dict(n=30, seed=seed, size=12, steps=10, R=2.0, V=1.0, config=WalkerConfig(0.9, talk, 0.0))


def policy(sim: Simulation) -> SpeculativeScheduler:
    assert isinstance(sim.scheduler, SpeculativeScheduler)
    return sim.scheduler


def test_runs_apart_and_joins_really_occur_and_reproduce_serial() -> None:
    """Crowded talkers under both adversarial drivers: clusters run apart, some touch and are joined, some of
    those joined parts are smaller than their cluster, and every result is serial's."""
    apart = rejoined = 0
    for seed in range(8):
        world = crowded(seed)
        serial = walker_sim(scheduler="serial", **world)
        run_shuffled(serial, random.Random(seed))
        for driver in (run_eager, run_shuffled):
            sim = walker_sim(scheduler=bold(), **world)
            driver(sim, random.Random(seed))
            assert outcome(sim) == outcome(serial)
            apart += policy(sim).apart
            rejoined += policy(sim).rejoined
    assert apart > 0 and rejoined > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds, order_seed=st.integers(0, 2**16), eager=st.booleans())
def test_clusters_run_whole_without_apart_and_reproduce_serial(world: dict, order_seed: int, eager: bool) -> None:
    """`apart=0`: the bets on blockers alone, each cluster one unit, as before runs apart existed."""
    serial = walker_sim(scheduler="serial", **world)
    run_shuffled(serial, random.Random(order_seed))
    sim = walker_sim(scheduler=bold(WHOLE), **world)
    (run_eager if eager else run_shuffled)(sim, random.Random(order_seed))
    assert outcome(sim) == outcome(serial)
    assert policy(sim).apart == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=talking_callers)
def test_runs_apart_in_virtual_time_reproduce_serial(world: dict[str, Any]) -> None:
    """LLM calls in flight while a touch undoes two parts, and runs committed as soon as a step said it touches
    nobody more: serial's result."""
    serial = virtual_walkers(world, "serial")
    sim = virtual_walkers(world, bold())
    assert outcome(sim) == outcome(serial)


async def test_runs_apart_in_real_time_commit_as_soon_as_a_step_says_whom_it_talks_with() -> None:
    """Against the loopback server (each answer a real HTTP round trip): the asyncio runtime commits held runs
    apart once a step has said it touches nobody more (`call_soon`), and every run ends as serial's."""
    early = apart = 0
    with FaultServer(delay=0.002) as server:
        cfg = EndpointConfig(base_url=server.base_url, model="m", api_key_env=None, read_timeout=30.0)
        async with OpenAIClient(cfg) as client:
            for seed in range(3):
                world = dict(n=20, seed=seed, size=12, steps=5, R=2.0, V=1.0, config=WalkerConfig(0.9, 0.6, 0.8))
                serial = walker_sim(scheduler="serial", **world)
                await AsyncioRuntime(serial, client).run()
                sim = walker_sim(scheduler=bold(), **world)
                await AsyncioRuntime(sim, client).run()
                assert outcome(sim) == outcome(serial)
                assert sim.speculation is not None
                early += sim.speculation.stats.apart_commits
                apart += policy(sim).apart
    assert apart > 0 and early > 0


# -- one touch joins the two, and only the two -------------------------------------------------------------------


class Toucher(Agent):
    """Stands still; at step 0 touches `touches` (if any), and counts its own step runs."""

    def __init__(self, name: str, pos: Pos, touches: int | None = None) -> None:
        super().__init__(name, pos)
        self.touches = touches
        self.runs = 0
        self.heard: list[str] = []

    async def step(self, ctx: StepContext) -> None:
        self.runs += 1
        if ctx.step == 0 and self.touches is not None:
            partner = ctx.partner(self.touches)
            partner.heard.append(self.name)  # type: ignore[attr-defined]
        ctx.no_more_partners()
        ctx.act(f"heard {len(self.heard)}")

    def snapshot(self) -> object:
        return tuple(self.heard)


def row(scheduler: Any) -> Simulation:
    """A, B and C in a row, each within R + V of the next, A and C farther apart: one cluster. C touches B."""
    agents = [Toucher("A", (0, 0)), Toucher("B", (3, 0)), Toucher("C", (6, 0), touches=1)]
    world = World(perception_radius=2.0, max_velocity=1.0)
    return Simulation(world, agents, until=2, scheduler=scheduler, keep_history=True)


def test_a_touch_joins_the_two_parts_and_the_rest_of_the_cluster_runs_once() -> None:
    serial = row("serial")
    run_shuffled(serial, random.Random(0))
    sim = row(bold())
    units = []
    while not sim.done():
        unit = sim.pop_ready()
        assert unit is not None
        units.append(unit.members)
        sim.commit(unit, finish(sim.execute(unit, None, lambda: 0.0)))
    assert outcome(sim) == outcome(serial)
    assert policy(sim).rejoined == 1
    assert (1, 2) in units and (0,) in units  # B and C joined; A still apart
    a, b = sim.agents[:2]
    assert a.runs == 2 and b.heard == ["C"]  # type: ignore[attr-defined]  # A's step 0 was never undone


def test_a_touch_after_saying_no_more_partners_is_refused() -> None:
    class Liar(Toucher):
        async def step(self, ctx: StepContext) -> None:
            ctx.no_more_partners()
            ctx.partner(0)

    world = World(perception_radius=2.0, max_velocity=1.0)
    sim = Simulation(world, [Toucher("A", (0, 0)), Liar("B", (1, 0))], until=1, scheduler="serial")
    first = sim.pop_ready()
    assert first is not None
    sim.commit(first, finish(sim.execute(first, None, lambda: 0.0)))
    second = sim.pop_ready()
    assert second is not None
    with pytest.raises(InteractionError, match="it said it would touch no other agent"):
        finish(sim.execute(second, None, lambda: 0.0))


def test_window_apart_is_on_by_default_and_checked() -> None:
    assert Window().apart == 1 and BOLD.apart == 1
    assert Window.parse("apart=0") == Window(apart=0)
    with pytest.raises(ValueError, match="apart is 0 \\(off\\) or 1 \\(on\\)"):
        Window(apart=2)
    with pytest.raises(ValueError, match=r"apart is a whole number, got 0\.5"):
        Window.parse("apart=0.5")
