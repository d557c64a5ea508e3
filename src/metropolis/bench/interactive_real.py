"""`metropolis bench interactive --real`: a person in the town against the local batching server, in real time.

The virtual-time bench (bench/interactive.py) models a serving engine with a priority class. llama.cpp's
llama-server has none, so here the class is the client's (`llm/priority_gate.py`): interactive requests go
out at once, background requests wait at the gate while one is outstanding. Measured on the wall clock:

A scripted player stands in the Lin family's house (`agents/player_spawn.py`) and every `talk_every` steps speaks
to whoever is nearest, who answers through the LLM (40 tokens); around it `walkers` random walkers, the Lin
family first and then the town, call the LLM at the Generative Agents rate (bench realtime's walkers). The
server runs with `--ignore-eos` and no prompt reuse, so every call costs the same in every mode. Modes, one
after another on the same server:

- `idle`: the same run, but only the person's replies go to the server (the rest are answered on the spot):
  the reply on an idle server, the reference for the latency ratio;
- `no player`: the walkers alone (the throughput reference);
- `priority`: the player, its horizon's requests interactive, the gate `interactive-first`;
- `preempt`: the same, the gate `preempt` (background requests in flight called back when the person speaks);
- `no priority`: the player, no gate: the server's own order (FCFS over its slots);
- `lockstep`: the player, the whole town stepping with it, the gate on.

Figures: the player-facing reply latency p50/p95 (wall seconds; the same replies in every mode, since the
simulation does not depend on timing), background throughput (the walkers' agent-steps per wall second), and
the machine's load average over the run (the runs share the CPU with whatever else runs).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metropolis.agents.player import REPLY, PlayerAgent
from metropolis.agents.player_input import Command, PlayerInput, Say
from metropolis.agents.player_spawn import default_spawn
from metropolis.agents.randomwalk import WALKER_CALLS_PER_STEP, RandomWalker, WalkerConfig
from metropolis.bench.interactive import Replies
from metropolis.engine import Agent, Simulation
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.priority_gate import PriorityGate, make_admission
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.runtime import AsyncioRuntime
from metropolis.runtime.horizon import PlayerHorizon
from metropolis.world.smallville import Town

PLAYER = "Visitor"
FAMILY = ("John Lin", "Mei Lin", "Eddy Lin")
# bench realtime's walker calls: a short question in SmolLM2's chat template, 22 tokens out
WALKER = WalkerConfig(call_prob=WALKER_CALLS_PER_STEP, prompt_tokens=36, output_tokens=22)
# mode -> (scheduler, with a player, gate policy, background calls answered off the server)
REAL_MODES: dict[str, tuple[str, bool, str, bool]] = {
    "idle": ("metropolis", True, "none", True),
    "no player": ("metropolis", False, "none", False),
    "priority": ("metropolis", True, "interactive-first", False),
    "preempt": ("metropolis", True, "preempt", False),
    "no priority": ("metropolis", True, "none", False),
    "lockstep": ("lockstep", True, "interactive-first", False),
}


@dataclass(frozen=True, slots=True)
class RealRow:
    mode: str
    wall_seconds: float
    background_steps: int
    background_calls: int
    replies: list[float]  # the player-facing reply latencies, wall seconds
    held: int  # background requests that waited at the gate
    called_back: int  # background sends dropped for the person's (the gate `preempt`)
    load: tuple[float, float]  # the 1-minute load average when the run started and when it ended

    @property
    def throughput(self) -> float:
        """Background agent-steps per wall second."""
        return self.background_steps / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.replies, q)) if self.replies else None


@dataclass(frozen=True, slots=True)
class RealSetting:
    walkers: int
    steps: int
    slots: int
    cap: int
    rows: dict[str, RealRow]

    def p95_ratio(self, mode: str) -> float | None:
        """p95 of `mode`'s replies over that of the same replies on an idle server."""
        idle = self.rows.get("idle")
        p95, base = self.rows[mode].percentile(95), None if idle is None else idle.percentile(95)
        return None if p95 is None or not base else p95 / base

    def throughput_share(self, mode: str) -> float | None:
        """Background throughput of `mode` over the walkers' alone (None for `idle`: its background is not served)."""
        base = self.rows.get("no player")
        if mode == "idle" or base is None or base.throughput <= 0:
            return None
        return self.rows[mode].throughput / base.throughput


def talk_script(steps: int, talk_every: int) -> dict[int, tuple[Command, ...]]:
    """The person stays where they are and speaks to whoever is nearest every `talk_every` steps."""
    if talk_every < 1:
        raise ValueError(f"talk_every must be >= 1 step, got {talk_every}")
    return {t: (Say(f"Hello, it is step {t}. What are you doing today?"),) for t in range(0, steps, talk_every)}


def walkers_of(town: Town, count: int) -> list[Agent]:
    """`count` walkers: the Lin family first (around the player), then the town in the data's order."""
    family = [p for p in town.personas if p.name in FAMILY]
    rest = [p for p in town.personas if p.name not in FAMILY]
    chosen = (family + rest)[:count]
    if len(chosen) < count:
        raise ValueError(f"--walkers must be within 1..{len(town.personas)}, got {count}")
    return [RandomWalker(p.name, p.spawn, WALKER) for p in chosen]


class OffServer:
    """Sends only the person's replies to `inner` and answers every other request on the spot (empty text): the
    replies on an otherwise idle server."""

    def __init__(self, inner: LLMBackend, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.clock = clock

    async def complete(self, request: LLMRequest) -> LLMResponse:
        if request.function == REPLY:
            return await self.inner.complete(request)
        now = self.clock()
        return LLMResponse("", 0, 0, start=now, end=now, endpoint="off-server")


async def run_real_mode(
    town: Town, cfg: EndpointConfig, mode: str, walkers: int, steps: int, talk_every: int, cap: int, seed: int = 0
) -> RealRow:
    scheduler, with_player, policy, off_server = REAL_MODES[mode]
    agents = walkers_of(town, walkers)
    player = PlayerAgent(PLAYER, default_spawn(town), PlayerInput(talk_script(steps, talk_every)))
    if with_player:
        agents.append(player)
    sim = Simulation(town.world, agents, until=steps, scheduler=scheduler, seed=seed, start_seconds=7 * 3600)
    replies = Replies()
    sim.call_listeners.append(replies)
    load0 = os.getloadavg()[0]
    async with OpenAIClient(cfg) as client:
        server: LLMBackend = OffServer(client) if off_server else client
        gate = PriorityGate(server, make_admission(policy, cap))
        llm: LLMBackend = PlayerHorizon(gate, sim, player) if with_player else gate
        report = await AsyncioRuntime(sim, llm).run()
    background_steps = report.agent_steps - (steps if with_player else 0)
    return RealRow(
        mode, report.duration, background_steps, replies.background, replies.latencies, gate.held,
        gate.called_back, (load0, os.getloadavg()[0]),
    )  # fmt: skip


Progress = Callable[[str], None]


def bench_interactive_real(
    town: Town,
    cfg: EndpointConfig,
    *,
    walkers: int = 8,
    minutes: float = 3.0,
    talk_every: int = 2,
    cap: int = 0,
    slots: int = 0,
    modes: tuple[str, ...] = tuple(REAL_MODES),
    seed: int = 0,
    progress: Progress | None = None,
) -> RealSetting:
    """Every mode in turn against the server at `cfg` (`slots`: its parallel slots, for the report)."""
    steps = max(1, round(minutes * 60 / town.world.seconds_per_step))
    rows = {}
    for mode in modes:
        if progress is not None:
            progress(f"{walkers} walkers and a player, {steps} steps: {mode}")
        rows[mode] = asyncio.run(run_real_mode(town, cfg, mode, walkers, steps, talk_every, cap, seed))
    return RealSetting(walkers, steps, slots, cap, rows)
