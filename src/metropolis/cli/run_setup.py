"""What `metropolis run` builds from its options: the town, the agents and the simulation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console

from metropolis.agents import town_walkers
from metropolis.agents.genagent import GenAgentConfig, GenerativeAgent, Timeline, build_town_agents, parse_summary
from metropolis.agents.player import PlayerAgent
from metropolis.agents.player_input import PACES, PlayerInput, make_pace
from metropolis.agents.player_log import read_script
from metropolis.agents.player_spawn import parse_at, spawn_point
from metropolis.cli.config import RunConfig, checked
from metropolis.cli.llm_source import check_llm_spec
from metropolis.engine import Agent, Simulation
from metropolis.llm.accounting import Prices
from metropolis.registry import check_name
from metropolis.store.choice import check_store
from metropolis.world.smallville import Town, load_smallville

AGENT_KINDS = ("walker", "generative")


@dataclass(frozen=True, slots=True)
class RunOptions:
    agents: int | None = None
    hours: float = 1.0
    start_hour: float = 8.0
    scheduler: str = "metropolis"
    priority: bool = True
    members: str = "concurrent"
    runtime: str = "auto"
    workers: int | None = None  # --runtime ray: worker actors (None: one per CPU of the Ray cluster)
    ray_address: str = ""  # --runtime ray: "" starts a local Ray; auto or ray://host:port joins a cluster
    unit_timeout: float = 0.0  # --runtime ray: seconds before a silent worker's unit goes elsewhere (0: never)
    llm: str = ""
    kind: str = "vllm"
    model: str = "default"
    preset: str = "l4-llama3-8b"
    gpus: int = 1
    agent: str = "auto"
    metric: str = "euclidean"
    seed: int = 0
    check: bool = False
    out_dir: Path | None = None
    replay: Path | None = None
    genagent: tuple[str, ...] = ()
    price: str = ""
    timeout: float = 120.0
    attempts: int = 6
    force: bool = False
    memory: str = ""
    fraction: float = 0.25
    store: str = ""  # where the journal and checkpoints go: "" (sqlite), "redis" or a redis:// URL
    player: str = ""  # a person in the town, by this name (see agents/player.py)
    player_script: str = ""  # its commands: a script file or a run folder with trace/player.jsonl
    player_pace: str = "auto"  # script, clock or input; auto: script in virtual time, clock in real time
    player_seconds: float = 1.0  # the player's wall seconds per step (clock), or its idle limit (input)
    player_at: str = ""  # its first tile "X,Y" ("": by the Lin family, agents/player_spawn.py)

    def resolved(self) -> RunOptions:
        """Fill the automatic choices and check everything, so a bad option fails before any work starts."""
        known = {k: v for k, v in dataclasses.asdict(self).items() if k in RunConfig.model_fields}
        checked(known)  # ranges, names and choices: cli/config.py's RunConfig
        prices(self.price)
        if self.llm:
            check_llm_spec(self.llm, self.kind)
        if self.replay is not None and not self.replay.is_dir():
            raise FileNotFoundError(f"--replay {self.replay}: no run folder there")
        GenAgentConfig.from_pairs(list(self.genagent))
        check_store(self.store)
        if self.replay is not None and self.llm:
            raise ValueError("--replay answers from a recorded run: it takes no --llm")
        runtime = self.runtime if self.runtime != "auto" else ("asyncio" if self.llm else "virtual")
        if runtime == "virtual" and self.llm:
            raise ValueError("--llm calls a real server: use --runtime asyncio (or auto), not virtual")
        if runtime != "virtual" and self.replay is not None:
            raise ValueError("--replay runs in virtual time: leave --runtime at auto or virtual")
        if (self.workers is not None or self.ray_address or self.unit_timeout) and runtime != "ray":
            raise ValueError("--workers, --ray-address and --unit-timeout are for --runtime ray")
        if self.memory and runtime != "virtual":  # the policy's name and the fraction: RunConfig
            raise ValueError("--memory models serving memory in virtual time: leave --runtime at auto or virtual")
        if runtime == "ray" and self.scheduler == "speculative":
            raise ValueError(
                "--scheduler speculative holds and undoes its bets in this process, which Ray workers cannot: use "
                "--runtime asyncio (or virtual), or --scheduler metropolis with ray"
            )
        pace = self._player_pace(runtime)
        if runtime in ("asyncio", "ray") and not self.llm:
            raise ValueError(
                f"--runtime {runtime} calls a real LLM server: give --llm local (SmolLM2 on this machine) or --llm URL"
                " (virtual time needs none)"
            )
        live = bool(self.llm) or self.replay is not None
        agent = self.agent if self.agent != "auto" else ("generative" if live else "walker")
        agents = self.agents if self.agents is not None else (3 if live else 25)
        return dataclasses.replace(self, runtime=runtime, agent=agent, agents=agents, player_pace=pace)

    def _player_pace(self, runtime: str) -> str:
        if not self.player:
            if self.player_script or self.player_at:
                flag = "--player-script" if self.player_script else "--player-at"
                raise ValueError(f"{flag} needs --player NAME: whose commands are they?")
            return self.player_pace
        if runtime == "ray":  # its commands arrive here, where the page and the script are, not on a worker
            raise ValueError("--player takes its commands in this process: use --runtime asyncio or virtual, not ray")
        if self.player_at:
            parse_at(self.player_at)  # the form here; the tile once the town is loaded
        pace = self.player_pace if self.player_pace != "auto" else ("script" if runtime == "virtual" else "clock")
        check_name(pace, PACES, "player pacing")
        if pace != "script" and runtime == "virtual":
            raise ValueError(f"--player-pace {pace} follows the wall clock: it needs a real-time run (--llm)")
        if self.player_seconds <= 0:
            raise ValueError(f"--player-seconds must be > 0, got {self.player_seconds:g}")
        if self.player_script:
            read_script(self.player_script)  # a bad script fails before any work starts
        return pace


def prices(text: str) -> Prices | None:
    """`--price`: a model of the price table, or PROMPT,COMPLETION in USD per million tokens."""
    return Prices.parse(text) if text else None


class RunExtra(Protocol):
    """Something an agent kind adds to a run (a timeline), written out when the run ends."""

    def finish(self, folder: Path, console: Console) -> None: ...


def build_simulation(opts: RunOptions) -> tuple[Simulation, str, list[RunExtra]]:
    picks = opts.agent == "generative" and GenAgentConfig.from_pairs(list(opts.genagent)).pick_personas != "first"
    town = load_smallville(metric=opts.metric, agents=None if picks else opts.agents)  # a pick needs them all
    steps = round(opts.hours * 3600 / town.world.seconds_per_step)
    if steps < 1:
        raise ValueError(f"--hours {opts.hours:g} is shorter than one step ({town.world.seconds_per_step:g} s)")
    start = opts.start_hour * 3600
    agents, extras = _agents(town, opts)
    if opts.player:
        agents.append(_player(town, opts))
    sim = Simulation(
        town.world, agents, until=steps, scheduler=opts.scheduler, priority=opts.priority, members=opts.members,
        seed=opts.seed, check_causality=opts.check, start_seconds=start, record_text=opts.agent == "generative",
    )  # fmt: skip
    for extra in extras:
        listener = getattr(extra, "listener", None)
        if listener is not None:
            sim.listeners.append(listener)
    where = f"{opts.preset} x {opts.gpus} (virtual time)" if opts.runtime == "virtual" else (opts.llm or "no LLM")
    what = f"{len(agents)} Smallville personas as {opts.agent} agents, {opts.scheduler}, LLM: {where}"
    if opts.player:
        what = f"{len(agents) - 1} Smallville personas as {opts.agent} agents and {opts.player} (player), " + (
            f"{opts.scheduler}, LLM: {where}"
        )
    return sim, what, extras


def _player(town: Town, opts: RunOptions) -> PlayerAgent:
    """The person in the town: they arrive by the Lin family (where the story starts), or at `--player-at`."""
    script = read_script(opts.player_script) if opts.player_script else None
    pace = make_pace(opts.player_pace if opts.player_pace != "auto" else "script", opts.player_seconds)
    return PlayerAgent(opts.player, spawn_point(town, opts.player_at), PlayerInput(script), pace)


def player_of(sim: Simulation) -> PlayerAgent | None:
    """The run's player, if it has one."""
    return next((a for a in sim.agents if isinstance(a, PlayerAgent)), None)


def _agents(town: Town, opts: RunOptions) -> tuple[list[Agent], list[RunExtra]]:
    if opts.agent == "walker":
        return list(town_walkers((p.name, p.spawn) for p in town.personas)), []
    assert opts.agents is not None  # resolved() fills it
    agents = build_town_agents(town, opts.agents, GenAgentConfig.from_pairs(list(opts.genagent)), opts.seed)
    timeline = TimelineOutput(agents, Timeline(opts.start_hour * 3600, town.world.seconds_per_step))
    return list(agents), [timeline]


@dataclass(slots=True)
class TimelineOutput:
    """The generative agents' day, written as timeline.md in the run folder and summarised on screen."""

    agents: list[GenerativeAgent]
    listener: Timeline

    def finish(self, folder: Path, console: Console) -> None:
        path = self.listener.write(folder / "timeline.md")
        console.print(self.listener.summary())
        console.print(parse_summary(self.agents))
        console.print(f"timeline: {path}")
