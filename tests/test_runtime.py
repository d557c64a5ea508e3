"""The runtimes drive the same engine: virtual time and asyncio give the serial simulation."""

from __future__ import annotations

import asyncio
import random
import zlib

import pytest

from metropolis.agents import WalkerConfig
from metropolis.engine import Agent, Simulation, StepContext
from metropolis.llm import LLMRequest, LLMResponse
from metropolis.runtime import AsyncioRuntime, Environment, VirtualRuntime
from metropolis.runtime.driver import StepFailed
from metropolis.world import World
from metropolis.world.tilemap import TileMap
from tests.scenarios import outcome, walker_sim

TALKY = WalkerConfig(move_prob=0.8, talk_prob=0.5, call_prob=0.7)


def delay_of(request: LLMRequest) -> float:
    """A per-request latency that depends only on the request, between 0.1 and 1.1 s."""
    key = f"{request.agent}:{request.step}:{request.function}".encode()
    return 0.1 + (zlib.crc32(key) % 1000) / 1000


class VirtualDelayLLM:
    """Answers after `delay_of(request)` virtual seconds; no batching (the serving model does that)."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    async def complete(self, request: LLMRequest) -> LLMResponse:
        start = self.env.now
        await self.env.timeout(delay_of(request))
        return LLMResponse("ok", 10, 2, start, self.env.now, "virtual")


class SleepLLM:
    async def complete(self, request: LLMRequest) -> LLMResponse:
        await asyncio.sleep(delay_of(request) / 200)
        return LLMResponse("ok", 10, 2, 0.0, 0.0, "sleep")


def run_virtual(scheduler: str, **kw: object):
    sim = walker_sim(12, scheduler, size=20, steps=12, config=TALKY, **kw)  # type: ignore[arg-type]
    env = Environment()
    report = VirtualRuntime(sim, env, VirtualDelayLLM(env)).run()
    return sim, report


def test_virtual_runtime_reproduces_serial_and_overlaps_calls() -> None:
    serial, serial_report = run_virtual("serial")
    expected = outcome(serial)
    durations = {"serial": serial_report.duration}
    for name in ("lockstep", "metropolis"):
        sim, report = run_virtual(name)
        assert outcome(sim) == expected
        assert report.llm_calls == serial_report.llm_calls > 0
        durations[name] = report.duration
    assert durations["serial"] > durations["lockstep"] > durations["metropolis"]
    assert serial_report.peak_llm_in_flight == 1
    assert serial_report.mean_running_agents <= 1.0


def test_virtual_runtime_is_deterministic() -> None:
    a, ra = run_virtual("metropolis")
    b, rb = run_virtual("metropolis")
    assert outcome(a) == outcome(b) and ra.duration == rb.duration


def test_asyncio_runtime_reproduces_serial() -> None:
    serial, _ = run_virtual("serial")
    sim = walker_sim(12, "metropolis", size=20, steps=12, config=TALKY)
    report = asyncio.run(AsyncioRuntime(sim, SleepLLM()).run())
    assert outcome(sim) == outcome(serial)
    assert report.agent_steps == 12 * 12 and report.runtime == "asyncio"


def test_asyncio_runtime_respects_max_units() -> None:
    sim = walker_sim(12, "metropolis", size=20, steps=6, config=TALKY)
    report = asyncio.run(AsyncioRuntime(sim, SleepLLM(), max_units=2).run())
    assert report.mean_running_agents <= 2 * 12  # units may hold clusters, but at most two units at once
    with pytest.raises(ValueError, match="max_units"):
        AsyncioRuntime(sim, SleepLLM(), max_units=0)


class Crasher(Agent):
    async def step(self, ctx: StepContext) -> None:
        if ctx.step == 2:
            raise KeyError("no such memory")


def crash_sim() -> Simulation:
    world = World(tilemap=TileMap.open(5, 5))
    return Simulation(world, [Crasher("Ann", (0, 0)), Crasher("Bob", (4, 4))], until=5)


def test_a_failing_step_names_the_agent_and_step() -> None:
    with pytest.raises(StepFailed, match=r"step 2 of (Ann|Bob) failed: KeyError"):
        VirtualRuntime(crash_sim(), Environment()).run()
    with pytest.raises(StepFailed, match=r"step 2 of (Ann|Bob) failed: KeyError"):
        asyncio.run(AsyncioRuntime(crash_sim()).run())


class Typo(Agent):
    async def step(self, ctx: StepContext) -> None:
        await ctx.llm("decide", "where to?", max_token=5)  # max_tokens


def test_an_llm_call_with_a_keyword_the_request_lacks_names_it() -> None:
    sim = Simulation(World(tilemap=TileMap.open(5, 5)), [Typo("Ann", (0, 0))], until=1)
    env = Environment()
    with pytest.raises(StepFailed, match=r"step 0 of Ann failed: TypeError: ctx.llm: .*'max_token'.*max_tokens"):
        VirtualRuntime(sim, env, VirtualDelayLLM(env)).run()


def test_moves_are_checked() -> None:
    class Jumper(Agent):
        async def step(self, ctx: StepContext) -> None:
            ctx.move((3, 3))

    sim = Simulation(World(tilemap=TileMap.open(5, 5)), [Jumper("J", (0, 0))], until=1)
    with pytest.raises(StepFailed, match="more than V"):
        VirtualRuntime(sim, Environment()).run()


def test_interaction_outside_the_cluster_is_refused() -> None:
    class Reacher(Agent):
        async def step(self, ctx: StepContext) -> None:
            ctx.partner(1 - self.unique_id)  # type: ignore[operator]

    world = World(tilemap=TileMap.open(30, 3))
    sim = Simulation(world, [Reacher("A", (0, 0)), Reacher("B", (29, 0))], until=1)
    with pytest.raises(StepFailed, match="only agents of its cluster"):
        VirtualRuntime(sim, Environment()).run()


def test_simulation_rejects_bad_setups() -> None:
    world = World(tilemap=TileMap.open(5, 5))
    with pytest.raises(ValueError, match="at least one agent"):
        Simulation(world, [], until=1)
    with pytest.raises(ValueError, match="unique; repeated: A"):
        Simulation(world, [Agent("A", (0, 0)), Agent("A", (1, 1))], until=1)
    with pytest.raises(ValueError, match="choose one of"):
        Simulation(world, [Agent("A", (0, 0))], until=1, scheduler="chaos")


def test_memory_stays_bounded_without_keep_history() -> None:
    rng = random.Random(3)
    sim = walker_sim(10, "metropolis", size=30, steps=200, seed=rng.randrange(100))
    sim.store.keep_all = False
    VirtualRuntime(sim, Environment()).run()
    assert sim.store.kept() <= 10 * 3
