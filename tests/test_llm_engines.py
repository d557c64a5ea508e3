"""llama-server slot save/restore and vLLM/SGLang LoRA load/unload, against a loopback server that follows
their documented contracts."""

from __future__ import annotations

import httpx
import pytest

from metropolis.llm.engines.llamacpp_slots import SlotClient, SlotError, SlotMemory
from metropolis.llm.engines.lora_adapters import AdapterError, AdapterManager, dialect, request_priority
from tests.loopback_engines import engine_app, serve


def test_slots_restore_saved_agents_and_evict_the_furthest() -> None:
    distance = {0: 1.0, 1: 9.0, 2: 0.0}
    with serve(engine_app(slots=2, max_loras=2)) as url, httpx.Client(base_url=url) as http:
        mem = SlotMemory(SlotClient(http), slots=2, distance=lambda a: distance[a])
        assert [mem.acquire(0), mem.acquire(1)] == [0, 1]
        mem.release(0)
        mem.release(1)
        assert mem.acquire(2) == 1  # agent 1 is furthest: its slot is erased (its KV is saved)
        mem.release(2)
        distance[0] = 5.0
        assert mem.acquire(1) == 0  # agent 0 is now the furthest; agent 1 comes back from its file
        assert mem.log[-3:] == [("save", 2, 1), ("erase", 0, 0), ("restore", 1, 0)]
        with pytest.raises(SlotError, match=r"HTTP 400.*could not open file"):
            SlotClient(http).restore(0, "agent-99.bin")
        with pytest.raises(SlotError, match="Invalid slot ID"):
            SlotClient(http).save(7, "x.bin")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_adapters_stay_within_max_loras_by_invocation_distance(engine: str) -> None:
    distance = {0: 3.0, 1: 8.0, 2: 1.0, 3: 0.0}
    app = engine_app(slots=1, max_loras=2)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        mgr = AdapterManager(http, engine, 2, lambda a: distance[a], lambda a: f"/adapters/agent-{a}")
        assert mgr.ensure(0) == "agent-0" and mgr.ensure(1) == "agent-1"
        assert mgr.ensure(2) == "agent-2"  # full: agent 1 (furthest) is unloaded first
        assert sorted(app.state.loras) == ["agent-0", "agent-2"]
        assert mgr.prefetch([3, 1]) == [3]  # 3 is nearer than 0; 1 is further than everything loaded
        assert sorted(mgr.loaded) == [2, 3]
        with pytest.raises(AdapterError, match=r"HTTP 400.*already been loaded"):
            mgr._post(mgr.dialect.load_path, mgr.dialect.load_body("agent-2", "/p", False))
        with pytest.raises(AdapterError, match="max_loras"):
            mgr._post(mgr.dialect.load_path, mgr.dialect.load_body("agent-9", "/p", False))
        with pytest.raises(AdapterError, match=r"HTTP 404.*cannot be found"):
            mgr._post(mgr.dialect.unload_path, {"lora_name": "agent-42"})
    if engine == "sglang":
        assert dialect("sglang").load_body("a", "/p", True)["pinned"] is True
    else:
        assert "pinned" not in dialect("vllm").load_body("a", "/p", True)


def test_priority_and_bad_names() -> None:
    assert [request_priority(0.0), request_priority(2.5, scale=10)] == [0, 25]
    assert request_priority(float("inf")) == 2**31 - 1
    assert request_priority(3.0, low_first=False) == -3
    with pytest.raises(ValueError, match="choose one of: vllm, sglang"):
        dialect("tgi")
