"""The interactive class in the serving model (preemption, background yielding) and on the wire (priority)."""

from __future__ import annotations

import pytest

from metropolis.kernel import Environment
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import endpoint
from metropolis.llm.serving import CostModel, Job, Replica, ServingConfig
from metropolis.llm.types import INTERACTIVE_LEAD, LLMRequest
from tests.fault_server import FaultServer

COST = CostModel(c0=0.010, c_prefill=0.0001, c_decode=0.0005, c_kv=0.00001)


def config(**kw: object) -> ServingConfig:
    base: dict[str, object] = {"name": "test", "cost": COST, "kv_capacity_tokens": 100_000, "max_batched_tokens": 4096}
    base.update(kw)
    return ServingConfig(**base)  # type: ignore[arg-type]


def run(cfg: ServingConfig, jobs: list[tuple[float, Job]]) -> Replica:
    env = Environment()
    replica = Replica(env, cfg)
    for at, job in jobs:
        env.schedule(at, replica.submit, job)
    env.run()
    return replica


def test_an_interactive_arrival_preempts_a_background_decode_which_resumes_by_recompute() -> None:
    background = Job("town", 100, 10, priority=0)
    person = Job("you", 100, 5, priority=50 - INTERACTIVE_LEAD, interactive=True)
    replica = run(config(max_running=1), [(0.0, background), (0.035, person)])
    # background: prefill 0.02 s, decodes of 0.01151 s, 0.01152 s, ...; the person arrives during the second,
    # which is cut there (0.04303 s): 3 tokens out, the background is paused and requeued
    assert (replica.preemptions, background.preemptions, background.generated) == (1, 1, 3)
    assert replica.recomputed_tokens == 103
    # the person: prefill 0.02 s, 4 decodes attending 101..104 KV tokens
    assert person.finished == pytest.approx(0.04303 + 0.02 + 0.0461)
    # the background again: prefill of 103 tokens (prompt + 3 generated), then its 6 last decodes (104..109)
    assert background.finished == pytest.approx(0.10913 + 0.0203 + 0.06939)
    assert (background.admitted, background.first_token) == (0.0, pytest.approx(0.02))  # its first ones kept


def test_without_interactive_requests_nothing_is_preempted() -> None:
    jobs = [Job("a", 100, 10), Job("b", 100, 5, priority=-1)]
    replica = run(config(max_running=1), [(0.0, jobs[0]), (0.035, jobs[1])])
    assert replica.preemptions == 0 and jobs[1].admitted == pytest.approx(jobs[0].finished)


@pytest.mark.parametrize(("slack", "waits"), [(None, False), (1.0, True), (3.0, False)])
def test_background_prefills_yield_to_an_interactive_request_within_its_slack(slack: float | None, waits: bool) -> None:
    person = Job("you", 100, 40, priority=-INTERACTIVE_LEAD, interactive=True)
    background = Job("town", 2000, 5)
    run(config(interactive_slack=slack), [(0.0, person), (0.05, background)])
    assert (background.admitted == person.finished) is waits


def test_slack_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="interactive_slack must be >= 1"):
        config(interactive_slack=0.5)


@pytest.mark.parametrize(("kind", "expected"), [("vllm", 7 - INTERACTIVE_LEAD), ("sglang", INTERACTIVE_LEAD - 7)])
async def test_interactive_requests_are_sent_ahead_in_the_dialects_priority(kind: str, expected: int) -> None:
    with FaultServer() as server:
        cfg = endpoint(kind, server.base_url, "m", api_key_env=None, read_timeout=2.0)
        async with OpenAIClient(cfg) as client:
            await client.complete(LLMRequest(agent="you", step=7, function="player_reply", interactive=True))
    assert server.arrivals[0].body.get("priority") == expected


def test_llama_cpp_has_no_priority_field() -> None:
    assert not endpoint("llama.cpp", "http://h:8080", "m", api_key_env=None).send_priority
