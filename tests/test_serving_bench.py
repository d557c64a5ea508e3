"""Speed of the serving model: calls per wall-clock second, a Smallville day and a 1,000-agent busy hour."""

from __future__ import annotations

import random
import time

import pytest

from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.llm.types import LLMRequest


def drive(agents: int, calls: int, span: float, gpus: int) -> tuple[float, float, VirtualLLM]:
    """`agents` closed-loop clients making `calls` calls in all, spread over about `span` virtual seconds."""
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, preset("l4-llama3-8b", gpus=gpus)))
    per_agent = calls // agents
    mean_gap = span / per_agent

    async def agent(i: int, rng: random.Random) -> None:
        for step in range(per_agent):
            await env.timeout(rng.expovariate(1 / mean_gap))
            await llm.complete(LLMRequest(f"a{i}", step, "f", prompt_tokens=rng.randint(400, 900), output_tokens=22))

    rng = random.Random(0)
    for i in range(agents):
        env.process(agent(i, random.Random(rng.random())))
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0, env.now, llm


@pytest.mark.bench
@pytest.mark.parametrize(
    ("label", "agents", "calls", "span", "gpus"),
    [("smallville day", 25, 56_700, 86_400.0, 1), ("1,000-agent busy hour", 1000, 200_000, 3_600.0, 8)],
)
def test_serving_model_speed(label: str, agents: int, calls: int, span: float, gpus: int) -> None:
    wall, virtual, llm = drive(agents, calls, span, gpus)
    summary = llm.summary()
    print(
        f"\n{label}: {len(llm.responses):,} calls in {wall:.2f} s wall ({len(llm.responses) / wall:,.0f} calls/s), "
        f"{virtual:,.0f} s virtual, mean batch {summary['mean_batch_size']:.2f}, "
        f"utilisation {summary['utilisation']:.2f}, mean latency {summary['mean_latency']:.2f} s"
    )
    assert len(llm.responses) == (calls // agents) * agents
