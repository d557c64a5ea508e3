"""`metropolis bench lora`: one LoRA adapter per agent on a real llama-server, which adapters stay resident chosen
by the server itself, LRU, invocation distance or Belady, on the same replayed Smallville window, side by side.

What llama-server really does with adapters (read in the llama.cpp sources of the binary we build, and measured
by `switch_costs`): every `--lora FILE` is loaded once at start and stays in memory; there is no endpoint to load
or unload one later. A request picks its adapters with the `lora` field (`[{"id", "scale"}]`, the others at
scale 0; `POST /lora-adapters` only sets the default scales). So a "load" is not a transfer of weights. What an
adapter change costs is this: when a slot serves a request whose adapters differ from its previous request's,
the server clears that slot's KV cache (`lora_should_clear_cache` in tools/server), so the whole prompt is
computed again; and the context rebuilds its graph for the new adapter set (`set_adapters_lora` marks a
re-reserve). Requests with different adapters are never batched together.

So here an adapter is "resident" where a slot holds it, with that agent's prompt computed under it: capacity =
slots, fewer than agents. A hit reuses the agent's cached persona prefix (only the call's suffix is evaluated);
a miss switches the slot's adapter and computes the whole prompt. The ways:

- `server`: no `id_slot`; the server picks a slot itself (longest common prefix, else least recently used);
- `lru` / `invocation-distance` / `belady`: a `SlotTable` (llm/engines/llama_server_slots.py) names the slot,
  evicting the holder used least recently, the one whose next call is furthest (`track_invocation_distance`), or
  the one whose next call in the `lru` run's recorded call order is furthest (`BeladyPolicy`: an offline bound
  on that order; the order of calls may differ slightly between runs, so it is a near-bound, not a proof).
Nothing is saved or restored: an evicted adapter's KV is dropped (the slot's save/restore is `bench slots-sim`).
All ways run with `--cache-ram 0` and the same bound on requests in flight (`in_flight`, fewer than slots by
default so that eviction has a choice). Hits are counted twice: as the policy saw them (its table) and as the
server did them (more than half of the prompt reused from the slot's cache, from `timings.prompt_n`).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from metropolis.bench.slots_sim import (
    NO_PROMPT_CACHE,
    AgentPrompts,
    SimBenchConfig,
    SimFactory,
    check_window,
    smallville_window,
)
from metropolis.engine.simulation import Simulation
from metropolis.engine.state import AgentState
from metropolis.llm.engines.llama_server import RunningServer, llama_server
from metropolis.llm.engines.llama_server_slots import SlotTable, VictimKey, make_table
from metropolis.llm.local_server import smollm2_path
from metropolis.llm.lora import AdapterSpec, adapter_paths
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.memory.policies import BeladyPolicy
from metropolis.registry import check_name
from metropolis.runtime import AsyncioRuntime
from metropolis.runtime.serving_memory import track_invocation_distance

WAYS = ("server", "lru", "invocation-distance", "belady")


@dataclass(frozen=True, slots=True)
class LoraBenchConfig:
    agents: int = 8
    start_hour: float = 12.0
    minutes: float = 4.0
    slots: int = 3  # adapters resident at once
    in_flight: int | None = None  # None: slots - 1 (at least 1), so that eviction has a choice
    prefix_words: int = 150  # about 200 SmolLM2 tokens of persona per agent, computed under its adapter
    suffix_words: int = 12
    max_output: int = 4
    scheduler: str = "metropolis"
    rank: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        check_window(self)

    def requests_in_flight(self) -> int:
        return self.in_flight or max(1, self.slots - 1)


@dataclass(slots=True)
class LoraWayResult:
    way: str
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    calls: int = 0
    policy_hits: int = 0  # the adapter was resident when the call came (None for `server`: it has no table)
    reused: int = 0  # calls where the server reused more than half of the prompt from the slot's cache
    evaluated: int = 0  # prompt tokens the server computed (sum of timings.prompt_n)
    prompt_tokens: int = 0  # prompt tokens sent
    call_ms: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []}, repr=False)
    order: list[int] = field(default_factory=list, repr=False)  # agents in the order their calls got a slot
    histories: list[list[AgentState]] = field(default_factory=list, repr=False)

    def median_ms(self, reused: bool) -> float | None:
        """Median wall time of a call (waiting for a slot included) that did (True) or did not reuse the prefix."""
        times = self.call_ms[reused]
        return statistics.median(times) if times else None


class AdapterSlots:
    """Which slot holds which agent's adapter, by a `SlotTable`; `acquire` waits while every slot is pinned.

    The table's save/restore plans are ignored: an adapter's KV is dropped on eviction, the next call recomputes.
    """

    def __init__(self, table: SlotTable) -> None:
        self.table = table
        self.hits = 0
        self._changed = asyncio.Condition()

    async def acquire(self, agent: int) -> int:
        async with self._changed:
            while True:
                resident = agent in self.table.holder
                placed = self.table.place(agent)
                if placed is not None:
                    break
                await self._changed.wait()
        self.hits += resident
        return placed[0]

    async def release(self, agent: int) -> None:
        async with self._changed:
            self.table.unpin(agent)
            self._changed.notify_all()


def lora_field(adapter: int | None, adapters: int) -> list[dict[str, float]]:
    """The request's `lora` list: `adapter` at scale 1 (None: none), the others at 0. It is never empty: an
    empty list means "the server's defaults" (llama-server then keeps the slot's cache whatever it held)."""
    return [{"id": i, "scale": 1.0 if i == adapter else 0.0} for i in range(adapters)]


class LoraBackend:
    """Answers the simulation's calls with each agent's own adapter, on the slot `slots` names (None: the server's
    choice)."""

    def __init__(
        self, http: httpx.AsyncClient, slots: AdapterSlots | None, cfg: LoraBenchConfig, prompts: AgentPrompts,
        on_call: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        self.http = http
        self.slots = slots
        self.cfg = cfg
        self.prompts = prompts
        self.on_call = on_call
        self.in_flight = asyncio.Semaphore(cfg.requests_in_flight())
        self.result = LoraWayResult("")
        self._nth: dict[int, int] = {}

    async def complete(self, request: LLMRequest) -> LLMResponse:
        agent = request.agent_id if request.agent_id is not None else 0
        nth = self._nth[agent] = self._nth.get(agent, -1) + 1
        body: dict[str, object] = {
            "prompt": self.prompts.prompt(request, nth), "n_predict": min(request.max_tokens, self.cfg.max_output),
            "cache_prompt": True, "temperature": 0.0, "seed": 0, "lora": lora_field(agent, self.cfg.agents),
        }  # fmt: skip
        start = time.monotonic()
        async with self.in_flight:
            if self.slots is None:
                self._called(agent)
                data = await post_completion(self.http, body)
            else:
                body["id_slot"] = await self.slots.acquire(agent)
                self._called(agent)
                try:
                    data = await post_completion(self.http, body)
                finally:
                    await self.slots.release(agent)
        return self._account(data, start)

    def _called(self, agent: int) -> None:
        self.result.order.append(agent)
        if self.on_call is not None:
            self.on_call(agent)

    def _account(self, data: dict, start: float) -> LLMResponse:
        end = time.monotonic()
        r = self.result
        evaluated, sent = int(data.get("timings", {}).get("prompt_n", 0)), int(data.get("tokens_evaluated", 0))
        reused = evaluated * 2 < sent
        r.calls += 1
        r.reused += reused
        r.evaluated += evaluated
        r.prompt_tokens += sent
        r.call_ms[reused].append((end - start) * 1000)
        n_out = int(data.get("tokens_predicted", 0))
        return LLMResponse(data.get("content", ""), sent, n_out, start, end)


async def post_completion(http: httpx.AsyncClient, body: dict[str, object]) -> dict:
    r = await http.post("/completion", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"llama-server /completion: HTTP {r.status_code}: {r.text[:200]}")
    data: dict = r.json()
    return data


def lora_args(paths: list[Path]) -> tuple[str, ...]:
    """llama-server flags loading `paths` (adapter id = position) without applying any of them."""
    return (*(arg for path in paths for arg in ("--lora", str(path))), "--lora-init-without-apply")


def no_default_adapters(server: RunningServer, adapters: int) -> None:
    """Every adapter's default scale to 0: `--lora-init-without-apply` leaves the listed defaults at 1."""
    r = httpx.post(f"{server.url}/lora-adapters", json=lora_field(None, adapters), timeout=60)
    r.raise_for_status()


def victim_key(way: str, sim: Simulation, order: list[int] | None, now: Callable[[], int]) -> VictimKey | None:
    """The table's eviction key for `way` (None: LRU's own)."""
    if way == "invocation-distance":
        return track_invocation_distance(sim, spatial=True).distance
    if way == "belady":
        if order is None:
            raise ValueError("the belady way needs the call order of an earlier run")
        belady = BeladyPolicy((float(i), agent) for i, agent in enumerate(order))
        return lambda agent: belady.next_use(agent, now())
    return None


def run_way(
    binary: Path, way: str, make_sim: SimFactory, cfg: LoraBenchConfig, paths: list[Path], order: list[int] | None,
    model: Path | None = None,
) -> LoraWayResult:  # fmt: skip
    """One simulation on a fresh server (base `model`, default SmolLM2) with every agent's adapter loaded."""
    check_name(way, WAYS, "way")
    extra = (*NO_PROMPT_CACHE, *lora_args(paths))
    with (
        tempfile.TemporaryDirectory() as saves,
        llama_server(binary, saves, slots=cfg.slots, model=model, extra=extra) as server,
    ):
        no_default_adapters(server, len(paths))
        sim = make_sim()
        calls = [0]
        slots = None
        if way != "server":
            table = make_table(cfg.slots, "lru")
            key = victim_key(way, sim, order, lambda: calls[0])
            if key is not None:
                table.key = key
            slots = AdapterSlots(table)
        prompts = AgentPrompts(cfg.prefix_words, cfg.suffix_words, cfg.seed)
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        result = asyncio.run(_simulate(sim, server.url, slots, cfg, prompts, calls))
        result.way = way
        result.wall_s = time.perf_counter() - t0
        result.server_cpu_s = server.cpu_seconds() - cpu0
    result.policy_hits = slots.hits if slots is not None else -1
    result.histories = [sim.history(i) for i in range(len(sim.agents))]
    return result


async def _simulate(
    sim: Simulation, url: str, slots: AdapterSlots | None, cfg: LoraBenchConfig, prompts: AgentPrompts,
    calls: list[int],
) -> LoraWayResult:  # fmt: skip
    def on_call(agent: int) -> None:
        calls[0] += 1

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        backend = LoraBackend(http, slots, cfg, prompts, on_call)
        await AsyncioRuntime(sim, backend).run()
    return backend.result


def run_lora_bench(
    binary: Path, cfg: LoraBenchConfig, *, ways: tuple[str, ...] = WAYS, model: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[LoraWayResult]:  # fmt: skip
    """The ways one after another on the same workload; raises if any simulation history differs. `belady`
    replays the call order of the `lru` run (run first when both are asked)."""
    for way in ways:
        check_name(way, WAYS, "way")
    model = model or smollm2_path()
    paths = adapter_paths(model, cfg.agents, AdapterSpec(rank=cfg.rank, alpha=cfg.rank))
    make_sim = smallville_window_of(cfg)
    results: list[LoraWayResult] = []
    order: list[int] | None = None
    for way in sorted(ways, key=lambda w: w == "belady"):
        if progress is not None:
            progress(way)
        if way == "belady" and order is None:
            order = run_way(binary, "lru", make_sim, cfg, paths, None, model).order
        results.append(run_way(binary, way, make_sim, cfg, paths, order, model))
        if way == "lru":
            order = results[-1].order
    for r in results[1:]:
        if r.histories != results[0].histories:
            raise RuntimeError(f"the {r.way} run's simulation history differs from the {results[0].way} run's")
    return results


def smallville_window_of(cfg: LoraBenchConfig) -> SimFactory:
    """The slots-sim bench's window (its other settings do not shape the workload)."""
    return smallville_window(
        SimBenchConfig(agents=cfg.agents, start_hour=cfg.start_hour, minutes=cfg.minutes, slots=1, seed=cfg.seed,
                       scheduler=cfg.scheduler)
    )  # fmt: skip


def adapter_bytes(paths: list[Path]) -> int:
    return sum(os.path.getsize(p) for p in paths)
