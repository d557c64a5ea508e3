"""llama-server slot save/restore by invocation distance or last use, against a loopback server that follows
the documented slot API."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from metropolis.llm.engines.llama_server_slots import AsyncSlotMemory, SlotClient, SlotError, make_table
from tests.loopback_engines import serve, slots_app


def test_slots_restore_saved_agents_and_evict_the_furthest() -> None:
    distance = {0: 1.0, 1: 9.0, 2: 0.0}

    async def scenario(http: httpx.Client) -> AsyncSlotMemory:
        mem = AsyncSlotMemory(SlotClient(http), make_table(2, "invocation-distance", lambda a: distance[a]))
        assert [await mem.acquire(0), await mem.acquire(1)] == [0, 1]
        await mem.release(0)
        await mem.release(1)
        assert await mem.acquire(2) == 1  # agent 1 is furthest: its KV is written back, its slot given to agent 2
        await mem.release(2)
        distance[0] = 5.0
        assert await mem.acquire(1) == 0  # agent 0 is now the furthest; agent 1 comes back from its file
        assert mem.log == [("save", 1, 1), ("save", 0, 0), ("restore", 1, 0)]
        assert await mem.acquire(0) == 1  # agent 2's slot is the only idle one
        assert mem.log[3:] == [("save", 2, 1), ("restore", 0, 1)]
        return mem

    with serve(slots_app(slots=2)) as url, httpx.Client(base_url=url) as http:
        asyncio.run(scenario(http))
        with pytest.raises(SlotError, match=r"HTTP 400.*could not open file"):
            SlotClient(http).restore(0, "agent-99.bin")
        with pytest.raises(SlotError, match="Invalid slot ID"):
            SlotClient(http).save(7, "x.bin")


def test_slot_table_evicts_by_its_key_then_least_recently_used() -> None:
    lru = make_table(2, "lru")
    for agent in (0, 1, 0):
        assert lru.place(agent) is not None
        lru.unpin(agent)
    assert lru.place(2) == (1, [("save", 1, 1)])  # 1 was used longest ago
    assert lru.place(1) == (0, [("save", 0, 0), ("restore", 1, 0)])
    assert lru.place(0) is None  # both slots pinned
    lru.unpin(2)
    assert lru.place(2) == (1, [])  # still resident: nothing to do
    assert lru.place(2) is None  # its slot is pinned by that call
    by_distance = make_table(2, "invocation-distance", lambda agent: 0.0)
    for agent in (0, 1):
        by_distance.place(agent)
        by_distance.unpin(agent)
    assert by_distance.place(2) == (0, [("save", 0, 0)])  # all at distance 0: the least recently used goes
    with pytest.raises(ValueError, match="choose one of: lru, invocation-distance"):
        make_table(2, "fifo")
    with pytest.raises(ValueError, match="needs a distance function"):
        make_table(2, "invocation-distance")
    with pytest.raises(RuntimeError, match="holds no pinned slot"):
        by_distance.unpin(0)


def test_async_slots_keep_at_most_n_requests_in_flight() -> None:
    """Three agents on two slots: the third acquire waits until a call releases its slot; then it takes the
    slot of the agent whose next call is furthest, writing that agent's KV back first."""
    distance = {0: 3.0, 1: 1.0, 2: 0.0}

    async def scenario(http: httpx.Client) -> list[str]:
        mem = AsyncSlotMemory(SlotClient(http), make_table(2, "invocation-distance", lambda a: distance[a]))
        events: list[str] = []
        assert [await mem.acquire(0), await mem.acquire(1)] == [0, 1]
        waiter = asyncio.ensure_future(mem.acquire(2))
        await asyncio.sleep(0.05)
        events.append(f"waiting={not waiter.done()}")
        await mem.release(1)
        events.append(f"agent 2 got slot {await waiter}")
        await mem.release(0)
        await mem.release(2)
        events.append(f"agent 1 got slot {await mem.acquire(1)}")  # restored from its file into 0's slot
        events.extend(f"{a} {who}@{slot}" for a, who, slot in mem.log)
        return events

    with serve(slots_app(slots=2)) as url, httpx.Client(base_url=url) as http:
        events = asyncio.run(scenario(http))
    assert events == [
        "waiting=True", "agent 2 got slot 1", "agent 1 got slot 0",
        "save 1@1", "save 0@0", "restore 1@0",
    ]  # fmt: skip
