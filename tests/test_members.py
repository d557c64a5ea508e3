"""Coupled members run together give exactly the serial-members result, whatever order their calls finish in."""

from __future__ import annotations

import asyncio
import random
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metropolis.agents import WalkerConfig
from metropolis.agents.genagent import GenAgentConfig, build_town_agents
from metropolis.engine import Agent, Simulation, StepContext
from metropolis.kernel import Environment
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.runtime import AsyncioRuntime, VirtualRuntime
from metropolis.world import World
from tests.genagent_helpers import ScriptedLLM, mini_town, sensible_answer
from tests.scenarios import outcome, walker_sim, walled_map


class ShuffledLatencyLLM:
    """Answers every call after a random delay: calls of one unit finish in an adversarial order."""

    def __init__(self, env: Environment, seed: int) -> None:
        self.env = env
        self.rng = random.Random(seed)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        start = self.env.now
        await self.env.timeout(self.rng.choice([0.001, 0.5, 1.0, 3.0, 10.0]))
        return LLMResponse("ok", request.prompt_tokens or 1, request.output_tokens or 1, start, self.env.now)


def run_virtual(sim: Simulation, seed: int) -> None:
    env = Environment()
    VirtualRuntime(sim, env, ShuffledLatencyLLM(env, seed)).run()


worlds = st.fixed_dictionaries(
    {
        "n": st.integers(2, 30),
        "seed": st.integers(0, 2**16),
        "size": st.integers(5, 16),
        "steps": st.integers(1, 10),
        "R": st.sampled_from([1.0, 2.0, 3.0, 4.0]),
        "V": st.sampled_from([1.0, 2.0]),
        "config": st.builds(
            WalkerConfig,
            move_prob=st.floats(0, 1),
            talk_prob=st.floats(0.3, 1),
            call_prob=st.floats(0.2, 1),
            rest_prob=st.sampled_from([0.0, 0.3]),
        ),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds, latency_seed=st.integers(0, 2**16))
def test_concurrent_members_reproduce_serial_members(world: dict, latency_seed: int) -> None:
    expected = None
    for scheduler, members in (
        ("serial", "serial"),
        ("metropolis", "serial"),
        ("metropolis", "concurrent"),
        ("lockstep", "concurrent"),
    ):
        sim = walker_sim(scheduler=scheduler, **world)
        sim.members = members
        run_virtual(sim, latency_seed)
        got = outcome(sim)
        if expected is None:
            expected = got
        assert got == expected, f"{scheduler} with {members} members diverged from serial"


def test_restarts_really_occur_and_reuse_answers() -> None:
    """Crowded walkers that always talk and call: members are restarted, and the results still match."""
    world = {
        "n": 30,
        "seed": 3,
        "size": 6,
        "steps": 6,
        "R": 3.0,
        "V": 1.0,
        "config": WalkerConfig(move_prob=0.5, talk_prob=1.0, call_prob=1.0),
    }
    serial = walker_sim(scheduler="metropolis", **world)
    serial.members = "serial"
    run_virtual(serial, 1)
    together = walker_sim(scheduler="metropolis", **world)
    run_virtual(together, 1)
    assert outcome(together) == outcome(serial)
    assert together.member_stats.restarts > 0


class Talker(Agent):
    """Writes its name into a partner's log, after one LLM call; reads its own log at the start of its step."""

    def __init__(self, name: str, pos: tuple[int, int], target: int | None, log: list[str]) -> None:
        super().__init__(name, pos)
        self.target = target
        self.seen: list[str] = []
        self.heard: list[str] = []
        self.log = log

    async def step(self, ctx: StepContext) -> None:
        self.seen.append(f"{ctx.step}:{','.join(self.heard)}")
        self.log.append(f"{self.name} starts {ctx.step}")
        await ctx.llm("think", f"{self.name} thinks at {ctx.step}", prompt_tokens=10, output_tokens=2)
        if self.target is not None:
            ctx.partner(self.target).heard.append(f"{self.name}@{ctx.step}")  # type: ignore[attr-defined]

    def state_dict(self) -> dict:
        return {"seen": list(self.seen), "heard": list(self.heard)}

    def load_state_dict(self, d: dict) -> None:
        self.seen, self.heard = list(d["seen"]), list(d["heard"])

    def snapshot(self) -> object:
        return (tuple(self.seen), tuple(self.heard))


def talkers(members: str) -> tuple[Simulation, list[str]]:
    log: list[str] = []
    world = World(tilemap=walled_map(4, 4, 0.0, random.Random(0)), perception_radius=2.0, max_velocity=1.0)
    # a0 writes into a2 (later: a2 restarts after a0), a1 writes into a0 (earlier: a1 restarts as the head)
    agents = [Talker("a0", (0, 0), 2, log), Talker("a1", (1, 0), 0, log), Talker("a2", (0, 1), None, log)]
    return Simulation(world, agents, until=2, scheduler="lockstep", members=members), log


def test_writes_land_in_serial_order() -> None:
    results, logs, restarts = {}, {}, {}
    for members in ("serial", "concurrent"):
        sim, logs[members] = talkers(members)
        run_virtual(sim, 0)
        results[members] = [a.snapshot() for a in sim.agents]
        restarts[members] = sim.member_stats.restarts
    assert results["concurrent"] == results["serial"]
    assert results["serial"][2] == (("0:a0@0", "1:a0@0,a0@1"), ("a0@0", "a0@1"))  # a0 writes before a2's step
    assert results["serial"][0] == (("0:", "1:a1@0"), ("a1@0", "a1@1"))  # a1 writes after a0's step
    assert logs["serial"] == ["a0 starts 0", "a1 starts 0", "a2 starts 0", "a0 starts 1", "a1 starts 1", "a2 starts 1"]
    # together: all start at once; a0 writes into the running a2, which runs again after a0 (its call's answer
    # reused from the journal); a1's call ends after a0's step, so a1 is the head when it writes into a0
    twice = [f"a{i} starts {s}" for s in (0, 1) for i in (0, 1, 2, 2)]
    assert logs["concurrent"] == twice
    assert restarts == {"serial": 0, "concurrent": 2}


class UnevenScriptedLLM(ScriptedLLM):
    """The scripted town model, each call taking its own time (from its prompt): members finish out of order."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        assert self.env is not None
        start = self.env.now
        await self.env.timeout(0.5 + zlib.crc32(request.prompt_text().encode()) % 97 / 10)
        text = self.answer(request)
        return LLMResponse(text, len(request.prompt_text()) // 4, len(text) // 4, start, self.env.now)


def test_generative_agents_talk_the_same_with_members_together() -> None:
    """Generative agents who meet and talk in a tiny town: the same story and memories either way."""
    out = {}
    for members in ("serial", "concurrent"):
        town = mini_town(3)
        agents = build_town_agents(town, 3, GenAgentConfig(embedder="hash"), seed=0)
        start = 6 * 3600 + 58 * 60
        sim = Simulation(
            town.world, agents, until=90, scheduler="metropolis", start_seconds=start, keep_history=True,
            check_causality=True, members=members,
        )  # fmt: skip
        env = Environment()
        VirtualRuntime(sim, env, UnevenScriptedLLM(sensible_answer, env)).run()
        chats = [len([m for m in a.memory.nodes if m.kind == "chat"]) for a in agents]
        out[members] = ([sim.history(i) for i in range(3)], [a.snapshot() for a in agents], chats)
    assert out["concurrent"] == out["serial"]
    assert out["serial"][2] == [1, 1, 0]  # Ann and Bob talked (Bob asks once Ann's step is done: no restart)


class JitteryLLM:
    """Real time: every call sleeps a random few milliseconds, so asyncio finishes members in any order."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        await asyncio.sleep(self.rng.random() * 0.003)
        return LLMResponse("ok", request.prompt_tokens or 1, request.output_tokens or 1)


def test_members_together_in_real_time() -> None:
    world = {"n": 20, "seed": 5, "size": 6, "steps": 5, "R": 3.0, "V": 1.0,
             "config": WalkerConfig(move_prob=0.5, talk_prob=1.0, call_prob=1.0, rest_prob=0.2)}  # fmt: skip
    serial = walker_sim(scheduler="serial", **world)
    run_virtual(serial, 0)
    together = walker_sim(scheduler="metropolis", **world)
    asyncio.run(AsyncioRuntime(together, JitteryLLM(1)).run())
    assert outcome(together) == outcome(serial)
    assert together.member_stats.restarts > 0
