"""What `metropolis run` builds from its options: the town, the agents and the simulation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console

from metropolis.agents import town_walkers
from metropolis.agents.genagent import GenAgentConfig, GenerativeAgent, Timeline, build_town_agents, parse_summary
from metropolis.cli.config import RunConfig, checked
from metropolis.cli.llm_source import check_llm_spec
from metropolis.engine import Agent, Simulation
from metropolis.llm.accounting import Prices
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
        live = bool(self.llm) or self.replay is not None
        agent = self.agent if self.agent != "auto" else ("generative" if live else "walker")
        agents = self.agents if self.agents is not None else (3 if live else 25)
        return dataclasses.replace(self, runtime=runtime, agent=agent, agents=agents)


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
    return sim, what, extras


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
