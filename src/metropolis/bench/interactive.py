"""`metropolis bench interactive`: a person walks through the Smallville busy hour while the town runs flat out.

Virtual time, the busy hour's generated workload (`metropolis bench sim --setting busy`) replayed as the
background town, and a scripted player: it shadows the first resident's recorded walk and every `talk_every`
steps speaks to whoever is nearest, who answers through the LLM (`PlayerAgent`, a `player_reply` call). Side by
side, on the same workload and modelled L4s:

- `no player`: the town alone (the throughput reference);
- `player`: the player, its horizon's requests interactive (ranked first, preempting background batch slots,
  background prefills yielding within the slack);
- `rank only`: the same without the yielding (`interactive_slack=None`): ranking and preemption alone;
- `no priority`: the player, every request background (baseline 1);
- `lockstep`: the player, the whole town stepping with it under lockstep (baseline 2; interactive class on).

Figures: the player-facing reply latency p50/p95 against the same call on an idle GPU (goal: p95 <= 1.5x), and
background throughput (background calls per virtual second) against the run without a player (goal: >= 90%).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metropolis.agents.player import REPLY, PlayerAgent, PlayerConfig
from metropolis.agents.player_input import Command, Move, PlayerInput, Say
from metropolis.agents.replay import replay_agents
from metropolis.engine import Agent, Simulation
from metropolis.engine.records import CallRecord
from metropolis.llm.serving import Cluster, ServingConfig, VirtualLLM, preset, single_request_latency
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.runtime.horizon import PlayerHorizon
from metropolis.workloads import DayConfig, Workload, generate
from metropolis.world.smallville import Town
from metropolis.world.world import World

PRESET = "l4-llama3-8b"
PLAYER = "Visitor"
# mode -> (scheduler, with a player, interactive class on, background yields within the slack)
MODES: dict[str, tuple[str, bool, bool, bool]] = {
    "no player": ("metropolis", False, False, True),
    "player": ("metropolis", True, True, True),
    "rank only": ("metropolis", True, True, False),
    "no priority": ("metropolis", True, False, True),
    "lockstep": ("lockstep", True, True, True),
}
P95_GOAL = 1.5  # player p95 within this factor of the idle GPU's latency
THROUGHPUT_GOAL = 0.9  # background throughput at least this share of the run without a player


@dataclass(frozen=True, slots=True)
class InteractiveRow:
    agents: int
    gpus: int
    mode: str
    virtual_seconds: float
    background_calls: int
    replies: list[float]  # the player-facing reply latencies, seconds
    idle_latency: float  # the same reply on an idle replica
    preemptions: int
    recomputed_tokens: int
    wall_seconds: float

    @property
    def throughput(self) -> float:
        """Background LLM calls per virtual second."""
        return self.background_calls / self.virtual_seconds if self.virtual_seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.replies, q)) if self.replies else None

    def p95_ratio(self) -> float | None:
        p95 = self.percentile(95)
        return None if p95 is None else p95 / self.idle_latency


@dataclass(frozen=True, slots=True)
class InteractiveSetting:
    agents: int
    gpus: int
    rows: dict[str, InteractiveRow]

    def throughput_share(self, mode: str) -> float:
        """Background throughput of `mode` over that of the run without a player."""
        base = self.rows["no player"].throughput
        return self.rows[mode].throughput / base if base > 0 else 0.0


def player_script(workload: Workload, talk_every: int) -> dict[int, tuple[Command, ...]]:
    """Shadow resident 0's recorded walk (moves it made are legal for the player too) and speak to the nearest
    agent every `talk_every` steps."""
    if talk_every < 1:
        raise ValueError(f"talk_every must be >= 1 step, got {talk_every}")
    xy = workload.positions[:, 0, :].tolist()
    script: dict[int, tuple[Command, ...]] = {}
    for t in range(workload.steps):
        commands: list[Command] = []
        if t % talk_every == 0:
            commands.append(Say(f"Hello there, it is step {t}. What are you doing?"))
        (x0, y0), (x1, y1) = xy[t], xy[t + 1]
        if (x0, y0) != (x1, y1):
            commands.append(Move(int(x1 - x0), int(y1 - y0)))
        if commands:
            script[t] = tuple(commands)
    return script


class Background:
    """Every request as background work: the `no priority` baseline."""

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner

    async def complete(self, request: LLMRequest) -> LLMResponse:
        if request.interactive:
            request = dataclasses.replace(request, interactive=False)
        return await self.inner.complete(request)


class Replies:
    """A call listener keeping the latencies of the player-facing replies and counting the rest."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.background = 0

    def on_call(self, record: CallRecord) -> None:
        if record.function == REPLY:
            self.latencies.append(record.end - record.start)
        else:
            self.background += 1


def run_mode(
    workload: Workload, world: World, serving: ServingConfig, mode: str, script: dict[int, tuple[Command, ...]]
) -> InteractiveRow:
    scheduler, with_player, interactive, yields = MODES[mode]
    if not yields:
        serving = serving.replace(interactive_slack=None)
    t0 = time.perf_counter()
    agents: list[Agent] = list(replay_agents(workload))
    config = PlayerConfig()
    x, y = workload.positions[0, 0].tolist()
    player = PlayerAgent(PLAYER, (x, y), PlayerInput(script), config=config)
    if with_player:
        agents.append(player)
    sim = Simulation(world, agents, until=workload.steps, scheduler=scheduler, start_seconds=workload.start_seconds)
    replies = Replies()
    sim.call_listeners.append(replies)
    env = Environment()
    cluster = Cluster(env, serving)
    llm: LLMBackend = VirtualLLM(env, cluster)
    if with_player:
        llm = PlayerHorizon(llm, sim, player) if interactive else Background(llm)
    report = VirtualRuntime(sim, env, llm).run()
    return InteractiveRow(
        workload.agents, serving.replicas, mode, report.duration, replies.background, replies.latencies,
        single_request_latency(serving, config.prompt_tokens, config.output_tokens),
        sum(r.preemptions for r in cluster.replicas), sum(r.recomputed_tokens for r in cluster.replicas),
        time.perf_counter() - t0,
    )  # fmt: skip


Progress = Callable[[str], None]


def bench_interactive(
    town: Town,
    settings: tuple[tuple[int, int], ...] = ((25, 1), (500, 8)),
    *,
    hours: float = 0.25,
    start_hour: float = 12.0,
    talk_every: int = 6,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[InteractiveSetting]:
    """Each (agents, gpus) setting: the busy hour's workload generated once, run in every mode."""
    out = []
    for agents, gpus in settings:
        config = DayConfig(agents=agents, start_hour=start_hour, hours=hours, seed=seed)
        workload, layout = generate(town, config)
        world = layout.world(config.perception_radius)
        serving = preset(PRESET, gpus=gpus)
        script = player_script(workload, talk_every)
        rows = {}
        for mode in MODES:
            if progress is not None:
                progress(f"{agents} agents on {gpus} L4: {mode}")
            rows[mode] = run_mode(workload, world, serving, mode, script)
        out.append(InteractiveSetting(agents, gpus, rows))
    return out
