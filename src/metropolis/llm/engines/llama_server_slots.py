"""Per-agent KV save/restore on llama.cpp's `llama-server`, driven by invocation distance (or last use).

The server's documented slot API (llama.cpp `tools/server/README.md`, "POST /slots/{id_slot}?action=save",
"?action=restore", "?action=erase"; needs `--slot-save-path DIR`):

- `POST /slots/{id}?action=save` with `{"filename": "agent-7.bin"}` writes the slot's KV cache (prompt tokens
  included) to DIR/filename; answers `{"id_slot", "filename", "n_saved", "n_written", "timings": {"save_ms"}}`;
- `POST /slots/{id}?action=restore` with `{"filename": ...}` loads it back; answers `{"id_slot", "filename",
  "n_restored", "n_read", "timings": {"restore_ms"}}`;
- `POST /slots/{id}?action=erase` clears the slot: `{"id_slot", "n_erased"}`.
A request pins itself to a slot with `"id_slot": id` in the `/completion` body (and `"cache_prompt": true`, the
default, so the restored prefix is reused and only the suffix is evaluated).

`SlotTable` is the whole policy: which agent holds which slot, which slots are pinned by a running request, and
whom to evict (the unpinned holder with the largest victim key: its invocation distance, or how long ago it was
last used). Eviction is write-back: the victim's KV is saved to its file only then (and only if a call changed
it since its last save), and the newcomer's file, if it has one, is restored into the freed slot.
`AsyncSlotMemory` runs the table's plans off the event loop and makes a request wait while every slot is pinned,
so with N slots at most N requests are in flight (`metropolis bench slots-sim` drives it).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from metropolis.memory.policies import Distance
from metropolis.registry import lookup

VictimKey = Callable[[int], float]  # agent -> the larger, the sooner it is evicted


class SlotError(RuntimeError):
    """The server refused a slot action; the message carries its status and body."""


@dataclass(frozen=True, slots=True)
class SlotResult:
    action: str
    slot: int
    tokens: int  # n_saved / n_restored / n_erased
    ms: float | None


class SlotClient:
    """The three slot actions of one llama-server, over an httpx client the caller owns."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _action(self, slot: int, action: str, filename: str | None) -> SlotResult:
        body = {"filename": filename} if filename is not None else {}
        r = self.http.post(f"/slots/{slot}", params={"action": action}, json=body)
        if r.status_code != 200:
            raise SlotError(f"slot {slot} {action} ({filename}): HTTP {r.status_code}: {r.text[:200]}")
        data = r.json()
        count = {"save": "n_saved", "restore": "n_restored", "erase": "n_erased"}[action]
        ms = data.get("timings", {}).get(f"{action}_ms")
        return SlotResult(action, int(data["id_slot"]), int(data[count]), ms)

    def save(self, slot: int, filename: str) -> SlotResult:
        return self._action(slot, "save", filename)

    def restore(self, slot: int, filename: str) -> SlotResult:
        return self._action(slot, "restore", filename)

    def erase(self, slot: int) -> SlotResult:
        return self._action(slot, "erase", None)

    def run(self, action: str, slot: int, filename: str | None) -> SlotResult:
        return self._action(slot, action, filename)


def filename(agent: int) -> str:
    return f"agent-{agent}.bin"


Action = tuple[str, int, int]  # (save | restore, agent, slot)


class SlotTable:
    """Who holds which slot, and the actions that give `agent` a slot: no I/O, so it is tested bare."""

    def __init__(self, slots: int, key: VictimKey | None = None) -> None:
        if slots < 1:
            raise ValueError(f"a llama-server has at least 1 slot, got {slots}")
        self.key: VictimKey = key or self.lru_key
        self.holder: list[int | None] = [None] * slots
        self.pinned: list[bool] = [False] * slots
        self.saved: set[int] = set()  # agents with a file
        self.dirty: set[int] = set()  # agents whose slot changed since their last save
        self.last_use: dict[int, int] = {}
        self._tick = itertools.count()

    def place(self, agent: int) -> tuple[int, list[Action]] | None:
        """Pin a slot for `agent` and say what to do first; None while its slot, or every slot, is pinned."""
        if agent in self.holder:
            slot = self.holder.index(agent)
            if self.pinned[slot]:
                return None
            self.pinned[slot] = True
            return slot, []
        free = [s for s, a in enumerate(self.holder) if a is None]
        if free:
            slot = free[0]
        else:
            idle = [s for s in range(len(self.holder)) if not self.pinned[s]]
            if not idle:
                return None
            slot = max(idle, key=self._victim_order)
        actions = self._evict(slot)
        if agent in self.saved:
            actions.append(("restore", agent, slot))
        self.holder[slot] = agent
        self.pinned[slot] = True
        return slot, actions

    def unpin(self, agent: int) -> None:
        """The agent's call is over: its slot may be given away (after a save, since the call changed it)."""
        slot = self.holder.index(agent) if agent in self.holder else None
        if slot is None or not self.pinned[slot]:
            raise RuntimeError(f"agent {agent} holds no pinned slot; acquire it before releasing it")
        self.pinned[slot] = False
        self.dirty.add(agent)
        self.last_use[agent] = next(self._tick)

    def forget(self, agent: int) -> None:
        """A slot action for `agent` failed: its slot holds nothing reliable now."""
        slot = self.holder.index(agent)
        self.holder[slot] = None
        self.pinned[slot] = False
        self.dirty.discard(agent)

    def lru_key(self, agent: int) -> float:
        """The victim key of LRU: the longer ago the last use, the larger."""
        return -float(self.last_use.get(agent, -1))

    def _evict(self, slot: int) -> list[Action]:
        victim = self.holder[slot]
        if victim is None or victim not in self.dirty:
            return []
        self.dirty.discard(victim)
        self.saved.add(victim)
        return [("save", victim, slot)]

    def _victim_order(self, slot: int) -> tuple[float, float, int]:
        """The policy's key, then the least recently used among equals (many agents are ready at distance 0)."""
        agent = self.holder[slot]
        assert agent is not None
        return self.key(agent), self.lru_key(agent), -slot


def _by_distance(table: SlotTable, distance: Distance | None) -> VictimKey:
    if distance is None:
        raise ValueError("the invocation-distance slot policy needs a distance function")
    return distance


SLOT_EVICTION_POLICIES: dict[str, Callable[[SlotTable, Distance | None], VictimKey]] = {
    "lru": lambda table, distance: table.lru_key,
    "invocation-distance": _by_distance,
}


def make_table(slots: int, policy: str, distance: Distance | None = None) -> SlotTable:
    """A table evicting by the eviction policy `policy` (a name in SLOT_EVICTION_POLICIES; invocation-distance
    needs `distance`)."""
    victim_key = lookup(SLOT_EVICTION_POLICIES, policy, "slot eviction policy")
    table = SlotTable(slots)
    table.key = victim_key(table, distance)
    return table


class AsyncSlotMemory:
    """The table's plans run off the event loop; `acquire` waits while every slot is pinned."""

    def __init__(self, client: SlotClient, table: SlotTable) -> None:
        self.client = client
        self.table = table
        self.log: list[Action] = []
        self._changed = asyncio.Condition()

    async def acquire(self, agent: int) -> int:
        async with self._changed:
            placed = self.table.place(agent)
            while placed is None:
                await self._changed.wait()
                placed = self.table.place(agent)
        slot, actions = placed
        try:
            for action, who, at in actions:  # the slot is pinned to us: nobody else touches it meanwhile
                await asyncio.to_thread(self.client.run, action, at, filename(who))
                self.log.append((action, who, at))
        except BaseException:
            async with self._changed:
                self.table.forget(agent)
                self._changed.notify_all()
            raise
        return slot

    async def release(self, agent: int) -> None:
        async with self._changed:
            self.table.unpin(agent)
            self._changed.notify_all()
