"""The accounting listener: one set of books per run, from the engine's call records, in every runtime."""

from __future__ import annotations

import asyncio
import random

import pytest

from metropolis.agents.randomwalk import RandomWalker, WalkerConfig
from metropolis.engine.records import CallRecord
from metropolis.engine.simulation import Simulation
from metropolis.kernel import Environment
from metropolis.llm.accounting import Accounting, Prices
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.runtime import AsyncioRuntime, VirtualRuntime
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World


def walkers(seed: int = 3) -> Simulation:
    rng = random.Random(seed)
    tilemap = TileMap.open(20, 20)
    world = World(tilemap=tilemap, perception_radius=3.0, max_velocity=1.0)
    tiles = tilemap.walkable_tiles()
    agents = [RandomWalker(f"w{i}", rng.choice(tiles), WalkerConfig(call_prob=0.5)) for i in range(6)]
    return Simulation(world, agents, until=8, scheduler="metropolis", seed=5)


def test_books_from_call_records() -> None:
    books = Accounting(Prices(0.15, 0.6))
    for name, prompt, output, attempts in (("Ann", 100, 10, 1), ("Ann", 50, 5, 3), ("Bob", 10, 1, 1)):
        books.on_call(CallRecord(0, name, 0, "f", prompt, output, 0.0, 1.0, "e", attempts=attempts))
    rows = {r["agent"]: r for r in books.rows()}
    assert (rows["Ann"]["calls"], rows["Ann"]["retries"], rows["Ann"]["prompt_tokens"]) == (2, 2, 150)
    assert rows["*total*"]["completion_tokens"] == 16
    assert books.cost() == pytest.approx((160 * 0.15 + 16 * 0.6) / 1e6)


def test_virtual_time_run_keeps_books_that_match_the_serving_model() -> None:
    sim = walkers()
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, preset("l4-llama3-8b")))
    runtime = VirtualRuntime(sim, env, llm)
    runtime.accounting.prices = Prices(0.15, 0.6)
    report = runtime.run()
    total = runtime.accounting.total()
    prompt = sum(r.prompt_tokens for r in llm.responses)
    output = sum(r.completion_tokens for r in llm.responses)
    assert total.calls == report.llm_calls == len(llm.responses) > 0
    assert (total.prompt_tokens, total.completion_tokens) == (report.prompt_tokens, report.completion_tokens)
    assert (total.prompt_tokens, total.completion_tokens) == (prompt, output)
    assert runtime.accounting.cost() == pytest.approx((prompt * 0.15 + output * 0.6) / 1e6)
    assert set(runtime.accounting.agents) <= {a.name for a in sim.agents}


def test_asyncio_run_keeps_the_same_books_as_virtual_time() -> None:
    class Echo:
        async def complete(self, request):  # type: ignore[no-untyped-def]
            from metropolis.llm.types import LLMResponse

            return LLMResponse("ok", request.prompt_tokens or 1, request.output_tokens or 1)

    sim = walkers()
    env = Environment()
    virtual = VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset("l4-llama3-8b"))))
    virtual.run()
    real = AsyncioRuntime(walkers(), Echo())
    asyncio.run(real.run())
    assert real.accounting.rows() == virtual.accounting.rows()
