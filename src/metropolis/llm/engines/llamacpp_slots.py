"""Per-agent KV save/restore on llama.cpp's `llama-server`, driven by invocation distance.

The server's documented slot API (llama.cpp `tools/server/README.md`, "POST /slots/{id_slot}?action=save",
"?action=restore", "?action=erase"; needs `--slot-save-path DIR`):

- `POST /slots/{id}?action=save` with `{"filename": "agent-7.bin"}` writes the slot's KV cache (prompt tokens
  included) to DIR/filename; answers `{"id_slot", "filename", "n_saved", "n_written", "timings": {"save_ms"}}`;
- `POST /slots/{id}?action=restore` with `{"filename": ...}` loads it back; answers `{"id_slot", "filename",
  "n_restored", "n_read", "timings": {"restore_ms"}}`;
- `POST /slots/{id}?action=erase` clears the slot: `{"id_slot", "n_erased"}`.
A request pins itself to a slot with `"id_slot": id` in the `/completion` body (and `"cache_prompt": true`, the
default, so the restored prefix is reused and only the suffix is evaluated).

`SlotMemory` maps agents to slots: before an agent's call it restores the agent's saved KV into a free slot
(unless the agent still holds one), after the call it saves it; when all slots are taken it evicts the agent
whose invocation distance is largest (saved to disk already, so eviction is a plain erase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from metropolis.memory.policies import Distance


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


class SlotMemory:
    """Which agent holds which of `slots` server slots; evicts by invocation distance (largest first)."""

    def __init__(self, client: SlotClient, slots: int, distance: Distance) -> None:
        if slots < 1:
            raise ValueError(f"a llama-server has at least 1 slot, got {slots}")
        self.client = client
        self.distance = distance
        self.holder: list[int | None] = [None] * slots
        self.saved: set[int] = set()
        self.log: list[tuple[str, int, int]] = []  # (action, agent, slot)

    @staticmethod
    def filename(agent: int) -> str:
        return f"agent-{agent}.bin"

    def acquire(self, agent: int) -> int:
        """The slot `agent`'s next request must name (`id_slot`), its saved KV restored into it if needed."""
        if agent in self.holder:
            return self.holder.index(agent)
        slot = self._free_slot()
        if agent in self.saved:
            self.client.restore(slot, self.filename(agent))
            self.log.append(("restore", agent, slot))
        self.holder[slot] = agent
        return slot

    def release(self, agent: int) -> None:
        """After the call: save the agent's KV, so its slot can be given away without losing it."""
        slot = self.holder.index(agent)
        self.client.save(slot, self.filename(agent))
        self.saved.add(agent)
        self.log.append(("save", agent, slot))

    def _free_slot(self) -> int:
        if None in self.holder:
            return self.holder.index(None)
        victim = max(range(len(self.holder)), key=lambda s: (self._dist(self.holder[s]), -s))
        agent = self.holder[victim]
        assert agent is not None
        self.client.erase(victim)
        self.log.append(("erase", agent, victim))
        self.holder[victim] = None
        return victim

    def _dist(self, agent: int | None) -> float:
        return math.inf if agent is None else self.distance(agent)
