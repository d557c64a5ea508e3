"""`metropolis bench slots-sim`: a whole simulation through a real `llama-server`'s slots: the server's own slot
reuse, LRU save/restore and invocation-distance save/restore, on the same replayed Smallville window, side by side.

Every agent's prompt is a long agent-specific prefix (its "persona": deterministic filler, distinct per agent)
and a short call-specific suffix, sent to `/completion` with `cache_prompt: true`. The server has fewer slots
than there are agents, so prefixes compete for slots:

- `server`: no `id_slot`; the server picks an idle slot itself (the one whose cached prompt is most similar, by
  longest common prefix, else the least recently used) and recomputes whatever prefix was overwritten;
- `lru` / `invocation-distance`: `AsyncSlotMemory` names the slot (`id_slot`), writes the evicted agent's KV to
  disk (`/slots/{id}?action=save`) and restores the newcomer's (`?action=restore`), evicting the agent used
  least recently, or the one whose next call is furthest away (`track_invocation_distance`).
All three run with `--cache-ram 0` (no host-memory prompt cache: newer servers keep evicted prompts in RAM by
default, which is a different baseline; `reference=True` adds it as a fourth way, `server-cache-ram`). Every
way has the same bound on requests in flight (`in_flight`, at most one per slot). With as many requests in
flight as slots, the slot a newcomer can take is mostly the only unpinned one, so the eviction policy rarely
has a choice; `in_flight < slots` leaves it one. What the server evaluated is its own count
(`timings.prompt_n`), and its CPU time is read from /proc, since wall time on a shared machine is noisy.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from metropolis.agents.replay import replay_simulation
from metropolis.engine.simulation import Simulation
from metropolis.engine.state import AgentState
from metropolis.llm.calibration import random_words
from metropolis.llm.engines.llama_server import llama_server
from metropolis.llm.engines.llama_server_slots import AsyncSlotMemory, SlotClient, make_table
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.registry import check_name
from metropolis.runtime import AsyncioRuntime
from metropolis.runtime.serving_memory import track_invocation_distance
from metropolis.workloads import DayConfig, generate
from metropolis.world.smallville import load_smallville

WAYS = ("server", "lru", "invocation-distance")
REFERENCE_WAY = "server-cache-ram"
NO_PROMPT_CACHE = ("--cache-ram", "0")


@dataclass(frozen=True, slots=True)
class SimBenchConfig:
    agents: int = 6
    start_hour: float = 12.0
    minutes: float = 8.0
    slots: int = 2
    prefix_words: int = 300  # about 400 SmolLM2 tokens of persona-like filler
    suffix_words: int = 12
    max_output: int = 4  # the recorded output length, capped: prefill is what the slots save
    scheduler: str = "metropolis"
    in_flight: int | None = None  # requests at once in every way (None: one per slot)
    seed: int = 0

    def __post_init__(self) -> None:
        check_window(self)


class Window(Protocol):
    """What a slot bench's configuration says of its window and its server."""

    @property
    def agents(self) -> int: ...
    @property
    def slots(self) -> int: ...
    @property
    def in_flight(self) -> int | None: ...
    @property
    def minutes(self) -> float: ...
    @property
    def prefix_words(self) -> int: ...
    @property
    def suffix_words(self) -> int: ...
    @property
    def max_output(self) -> int: ...


def check_window(cfg: Window) -> None:
    """The one check of a slot bench's configuration (this one's, and `bench lora`'s)."""
    if cfg.agents < 2 or cfg.slots < 1 or cfg.slots >= cfg.agents:
        raise ValueError(f"need 2+ agents and 1 <= slots < agents, got {cfg.agents} agents, {cfg.slots} slots")
    if cfg.in_flight is not None and not 1 <= cfg.in_flight <= cfg.slots:
        raise ValueError(f"in_flight must be within 1..slots ({cfg.slots}), got {cfg.in_flight}")
    if cfg.minutes <= 0 or cfg.prefix_words < 1 or cfg.suffix_words < 1 or cfg.max_output < 1:
        raise ValueError("minutes, prefix_words, suffix_words and max_output must be positive")


@dataclass(slots=True)
class WayResult:
    way: str
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    calls: int = 0
    restores: int = 0
    saves: int = 0
    evaluated: int = 0  # prompt tokens the server computed (sum of timings.prompt_n)
    prompt_tokens: int = 0  # prompt tokens sent (sum of tokens_evaluated: whole prompts, cached or not)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    histories: list[list[AgentState]] = field(default_factory=list, repr=False)


class AgentPrompts:
    """Deterministic prompts: agent `i`'s persona prefix, and a fresh suffix for each of its calls."""

    def __init__(self, prefix_words: int, suffix_words: int, seed: int = 0) -> None:
        self.prefix_words = prefix_words
        self.suffix_words = suffix_words
        self.seed = seed
        self._prefixes: dict[int, str] = {}

    def prefix(self, agent: int) -> str:
        if agent not in self._prefixes:
            words = random_words(random.Random(f"{self.seed}:persona:{agent}"), self.prefix_words)
            self._prefixes[agent] = f"You are agent {agent} of the town. Your memories: {words}\n"
        return self._prefixes[agent]

    def prompt(self, request: LLMRequest, nth: int) -> str:
        agent = request.agent_id if request.agent_id is not None else 0
        rng = random.Random(f"{self.seed}:{agent}:{request.step}:{request.function}:{nth}")
        return f"{self.prefix(agent)}Step {request.step}, {request.function}: {random_words(rng, self.suffix_words)}"


class SlotBackend:
    """Answers the simulation's calls on a llama-server, the slot named by `memory` or (None) by the server."""

    def __init__(
        self, http: httpx.AsyncClient, memory: AsyncSlotMemory | None, in_flight: int, prompts: AgentPrompts,
        max_output: int, clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.http = http
        self.memory = memory
        self.prompts = prompts
        self.max_output = max_output
        self.clock = clock
        self.in_flight = asyncio.Semaphore(in_flight)  # the same bound in every way
        self.result = WayResult("")
        self._nth: dict[int, int] = {}

    async def complete(self, request: LLMRequest) -> LLMResponse:
        agent = request.agent_id if request.agent_id is not None else 0
        nth = self._nth[agent] = self._nth.get(agent, -1) + 1
        body = {
            "prompt": self.prompts.prompt(request, nth), "n_predict": min(request.max_tokens, self.max_output),
            "cache_prompt": True, "temperature": 0.0, "seed": 0,
        }  # fmt: skip
        start = self.clock()
        async with self.in_flight:
            if self.memory is None:
                data = await self._post(body)
            else:
                body["id_slot"] = await self.memory.acquire(agent)
                try:
                    data = await self._post(body)
                finally:
                    await self.memory.release(agent)
        timings = data.get("timings", {})
        self.result.calls += 1
        self.result.evaluated += int(timings.get("prompt_n", 0))
        self.result.prompt_tokens += int(data.get("tokens_evaluated", 0))
        n_out = int(timings.get("predicted_n", data.get("tokens_predicted", 0)))
        return LLMResponse(data.get("content", ""), int(data.get("tokens_evaluated", 0)), n_out, start, self.clock())

    async def _post(self, body: dict[str, object]) -> dict:
        r = await self.http.post("/completion", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"llama-server /completion: HTTP {r.status_code}: {r.text[:200]}")
        data: dict = r.json()
        return data


SimFactory = Callable[[], Simulation]


def smallville_window(cfg: SimBenchConfig) -> SimFactory:
    """Fresh simulations replaying one generated Smallville window (histories kept, to compare the ways)."""
    day = DayConfig(agents=cfg.agents, start_hour=cfg.start_hour, hours=cfg.minutes / 60, seed=cfg.seed)
    workload, layout = generate(load_smallville(), day)
    world = layout.world(day.perception_radius)
    return lambda: replay_simulation(workload, world, cfg.scheduler, keep_history=True)


def run_way(binary: Path, way: str, make_sim: SimFactory, cfg: SimBenchConfig) -> WayResult:
    """One simulation on a fresh server (its own slot files, same flags but for the reference way)."""
    check_name(way, (*WAYS, REFERENCE_WAY), "way")
    extra = () if way == REFERENCE_WAY else NO_PROMPT_CACHE
    with tempfile.TemporaryDirectory() as saves, llama_server(binary, saves, slots=cfg.slots, extra=extra) as server:
        sim = make_sim()
        memory = None
        sync_http = httpx.Client(base_url=server.url, timeout=600)
        if way in ("lru", "invocation-distance"):
            distance = track_invocation_distance(sim, spatial=True).distance if way == "invocation-distance" else None
            memory = AsyncSlotMemory(SlotClient(sync_http), make_table(cfg.slots, way, distance))
        prompts = AgentPrompts(cfg.prefix_words, cfg.suffix_words, cfg.seed)
        load0, cpu0, t0 = os.getloadavg()[0], server.cpu_seconds(), time.perf_counter()
        with sync_http:
            result = asyncio.run(_simulate(sim, server.url, memory, cfg, prompts))
        result.way = way
        result.wall_s = time.perf_counter() - t0
        result.server_cpu_s = server.cpu_seconds() - cpu0
        result.load = (load0, os.getloadavg()[0])
    if memory is not None:
        done = Counter(action for action, *_ in memory.log)
        result.restores, result.saves = done["restore"], done["save"]
    result.histories = [sim.history(i) for i in range(len(sim.agents))]
    return result


async def _simulate(
    sim: Simulation, url: str, memory: AsyncSlotMemory | None, cfg: SimBenchConfig, prompts: AgentPrompts
) -> WayResult:
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        in_flight = cfg.in_flight or cfg.slots
        backend = SlotBackend(http, memory, in_flight, prompts, cfg.max_output, time.monotonic)
        await AsyncioRuntime(sim, backend).run()
    return backend.result


def run_sim_bench(
    binary: Path, cfg: SimBenchConfig, *, reference: bool = False, progress: Callable[[str], None] | None = None
) -> list[WayResult]:
    """The ways one after another on the same workload; raises if any simulation history differs."""
    make_sim = smallville_window(cfg)
    results = []
    for way in (*WAYS, REFERENCE_WAY) if reference else WAYS:
        if progress is not None:
            progress(way)
        results.append(run_way(binary, way, make_sim, cfg))
    for r in results[1:]:
        if r.histories != results[0].histories:
            raise RuntimeError(f"the {r.way} run's simulation history differs from the {results[0].way} run's")
    return results
