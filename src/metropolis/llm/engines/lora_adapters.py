"""Per-agent LoRA adapters on vLLM and SGLang, loaded and unloaded by invocation distance.

The documented endpoints:
- vLLM ("Dynamically serving LoRA Adapters", docs.vllm.ai, features/lora): with
  `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`, `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` and
  `POST /v1/unload_lora_adapter {"lora_name"}`; a request then names the adapter as its `model`. At most
  `--max-loras` adapters are active on the GPU per batch (`--max-cpu-loras` cached on the host).
- SGLang (docs.sglang.ai, "LoRA Serving"): `POST /load_lora_adapter {"lora_name", "lora_path", "pinned"}`
  and `POST /unload_lora_adapter {"lora_name"}`; `pinned` keeps an adapter in the GPU pool
  (`--max-loras-per-batch`); requests name it in `lora_path`.
- Both accept a request `priority`: vLLM with `--scheduling-policy priority` runs lower values first; SGLang
  with `--enable-priority-scheduling` runs higher values first unless `--schedule-low-priority-values-first`
  is given, and its radix cache can evict by request priority (`--radix-eviction-policy`, docs.sglang.io
  "Radix Cache Eviction Policies"). `request_priority` fills it from the agent's invocation distance.

`AdapterManager` keeps the adapters of the agents needed next loaded within `max_loras`: before an agent's call
it loads the agent's adapter, unloading the loaded adapter whose agent is furthest away if the budget is full.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from metropolis.memory.policies import Distance


class AdapterError(RuntimeError):
    """The server refused a load or unload; the message carries its status and body."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """Where an engine's adapter endpoints live and what they take."""

    name: str
    load_path: str
    unload_path: str
    pin: bool  # send "pinned" (SGLang)

    def load_body(self, name: str, path: str, pinned: bool) -> dict[str, object]:
        body: dict[str, object] = {"lora_name": name, "lora_path": path}
        if self.pin:
            body["pinned"] = pinned
        return body


VLLM = Dialect("vllm", "/v1/load_lora_adapter", "/v1/unload_lora_adapter", pin=False)
SGLANG = Dialect("sglang", "/load_lora_adapter", "/unload_lora_adapter", pin=True)
DIALECTS = {"vllm": VLLM, "sglang": SGLANG}


def dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r} for LoRA adapters; choose one of: {', '.join(DIALECTS)}") from None


def request_priority(distance: float, scale: float = 1.0, low_first: bool = True) -> int:
    """The `priority` field of a request so that the nearest agents go first: the distance (times `scale`)
    for engines that serve low values first (vLLM; SGLang with --schedule-low-priority-values-first), its
    negation for SGLang's default order."""
    p = 2**31 - 1 if distance == math.inf else int(distance * scale)
    return p if low_first else -p


class AdapterManager:
    """Loaded adapters of one server, at most `max_loras`; `adapter_path(agent)` names each agent's files."""

    def __init__(
        self,
        http: httpx.Client,
        engine: str | Dialect,
        max_loras: int,
        distance: Distance,
        adapter_path: Callable[[int], str],
    ) -> None:
        if max_loras < 1:
            raise ValueError(f"max_loras must be >= 1, got {max_loras}")
        self.http = http
        self.dialect = dialect(engine) if isinstance(engine, str) else engine
        self.max_loras = max_loras
        self.distance = distance
        self.adapter_path = adapter_path
        self.loaded: dict[int, str] = {}  # agent -> adapter name
        self.log: list[tuple[str, int]] = []

    @staticmethod
    def adapter_name(agent: int) -> str:
        return f"agent-{agent}"

    def ensure(self, agent: int, pinned: bool = False) -> str:
        """Load `agent`'s adapter if needed (evicting the furthest agent's); returns the name requests use."""
        if agent in self.loaded:
            return self.loaded[agent]
        if len(self.loaded) >= self.max_loras:
            victim = max(self.loaded, key=lambda a: (self.distance(a), a))
            self.unload(victim)
        name = self.adapter_name(agent)
        self._post(self.dialect.load_path, self.dialect.load_body(name, self.adapter_path(agent), pinned))
        self.loaded[agent] = name
        self.log.append(("load", agent))
        return name

    def unload(self, agent: int) -> None:
        name = self.loaded.pop(agent)
        self._post(self.dialect.unload_path, {"lora_name": name})
        self.log.append(("unload", agent))

    def prefetch(self, agents: list[int]) -> list[int]:
        """Load the adapters of the nearest `agents` not loaded yet, while they are nearer than a loaded one."""
        started = []
        for agent in sorted(agents, key=self.distance):
            if agent in self.loaded:
                continue
            if len(self.loaded) >= self.max_loras:
                furthest = max(self.loaded, key=lambda a: (self.distance(a), a))
                if not self.distance(furthest) > self.distance(agent):
                    break
            self.ensure(agent)
            started.append(agent)
        return started

    def _post(self, path: str, body: dict[str, object]) -> None:
        r = self.http.post(path, json=body)
        if r.status_code != 200:
            raise AdapterError(
                f"{self.dialect.name} {path} {body.get('lora_name')}: HTTP {r.status_code}: {r.text[:200]}"
            )
