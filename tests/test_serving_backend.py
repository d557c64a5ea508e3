"""VirtualLLM in the virtual-time runtime: responses, token counts, responders, and whole simulations."""

from __future__ import annotations

import random

import pytest

from metropolis.agents.randomwalk import RandomWalker, WalkerConfig
from metropolis.engine.simulation import Simulation
from metropolis.kernel import Environment
from metropolis.llm.serving import (
    Cluster,
    PlaceholderResponder,
    ReplayResponder,
    VirtualLLM,
    preset,
    single_request_latency,
)
from metropolis.llm.serving.responder import estimate_tokens
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.runtime.virtual import VirtualRuntime
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World


def call(env: Environment, llm: VirtualLLM, request: LLMRequest, at: float = 0.0) -> list[LLMResponse]:
    out: list[LLMResponse] = []

    async def client() -> None:
        if at:
            await env.timeout(at)
        out.append(await llm.complete(request))

    env.process(client())
    return out


def test_complete_takes_the_modelled_time_and_counts_tokens() -> None:
    env = Environment()
    cfg = preset("a100-llama3-8b")
    llm = VirtualLLM(env, Cluster(env, cfg))
    got = call(env, llm, LLMRequest("Ann", 3, "plan", prompt_tokens=643, output_tokens=22), at=5.0)
    env.run()
    (resp,) = got
    assert (resp.prompt_tokens, resp.completion_tokens) == (643, 22)
    assert resp.start == 5.0
    assert resp.latency == pytest.approx(single_request_latency(cfg, 643, 22))
    assert resp.endpoint == "a100-llama3-8b/replica-0"
    assert estimate_tokens(resp.text) == 22
    assert llm.responses == [resp]  # the response is the one record of the call, with its timeline
    assert resp.queue_wait == 0.0
    assert resp.ttft == pytest.approx(cfg.cost.iteration(643, 0, 0))


def test_token_counts_are_estimated_when_not_given() -> None:
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, preset("a100-llama3-8b")), PlaceholderResponder(default_tokens=7))
    msg = ({"role": "user", "content": "x" * 401},)
    got = call(env, llm, LLMRequest("Ann", 0, "chat", messages=msg, max_tokens=5))
    env.run()
    assert (got[0].prompt_tokens, got[0].completion_tokens) == (101, 5)  # 401 chars / 4; min(max_tokens, 7)


def test_replay_responder_answers_by_agent_step_function_and_call_number() -> None:
    answers = {("Ann", 1, "plan", 0): "wake up at 7", ("Ann", 1, "plan", 1): "x" * 40}
    replay = ReplayResponder(answers)
    first = replay.respond(LLMRequest("Ann", 1, "plan"))
    second = replay.respond(LLMRequest("Ann", 1, "plan", output_tokens=3))
    assert (first.text, first.tokens) == ("wake up at 7", 3)
    assert (second.text, second.tokens) == ("x" * 40, 3)
    with pytest.raises(ValueError, match="call #2"):
        replay.respond(LLMRequest("Ann", 1, "plan"))
    fallback = ReplayResponder(answers, fallback=PlaceholderResponder(4))
    assert fallback.respond(LLMRequest("Bob", 0, "plan")).tokens == 4


def test_env_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="another Environment"):
        VirtualLLM(Environment(), Cluster(Environment(), preset("l4-llama3-8b")))


def walker_run(scheduler: str, gpus: int = 1) -> tuple[Simulation, float, VirtualLLM]:
    rng = random.Random(3)
    tilemap = TileMap.open(30, 30)
    world = World(tilemap=tilemap, perception_radius=3.0, max_velocity=1.0)
    tiles = tilemap.walkable_tiles()
    cfg = WalkerConfig(call_prob=0.5)
    agents = [RandomWalker(f"w{i}", rng.choice(tiles), cfg) for i in range(12)]
    sim = Simulation(world, agents, until=12, scheduler=scheduler, seed=5, keep_history=True)
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, preset("l4-llama3-8b", gpus=gpus)))
    report = VirtualRuntime(sim, env, llm=llm).run()
    assert report.llm_calls == len(llm.responses) > 0
    return sim, report.duration, llm


def test_schedulers_agree_and_out_of_order_is_fastest_under_the_serving_model() -> None:
    runs = {name: walker_run(name) for name in ("serial", "lockstep", "metropolis")}
    histories = {name: [sim.history(a) for a in range(len(sim.agents))] for name, (sim, _, _) in runs.items()}
    assert histories["lockstep"] == histories["serial"]
    assert histories["metropolis"] == histories["serial"]
    durations = {name: d for name, (_, d, _) in runs.items()}
    assert durations["serial"] > durations["metropolis"]
    assert durations["serial"] >= durations["lockstep"] * 0.99
    assert durations["lockstep"] >= durations["metropolis"] * 0.99
    batch = {name: llm.mean_batch_size() for name, (_, _, llm) in runs.items()}
    assert batch["serial"] == pytest.approx(1.0)
    assert batch["metropolis"] > 1.0


def test_a_recorded_answer_books_its_recorded_token_counts() -> None:
    from metropolis.llm.serving.responder import Recorded

    env = Environment()
    llm = VirtualLLM(
        env, Cluster(env, preset("l4-llama3-8b")), ReplayResponder({("Ann", 0, "chat", 0): Recorded("hi", 321, 7)})
    )
    got = call(env, llm, LLMRequest("Ann", 0, "chat", messages=({"role": "user", "content": "x" * 40},)))
    env.run()
    assert (got[0].text, got[0].prompt_tokens, got[0].completion_tokens) == ("hi", 321, 7)
