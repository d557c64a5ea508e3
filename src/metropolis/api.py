"""`metropolis.simulate(...)`: run agents in one call, the way a researcher wants to.

Without it a run needs a `World`, a `Simulation`, an `Environment`, a `VirtualLLM` over a `Cluster` of a serving
preset and a `VirtualRuntime` (or, against a real model, a `LocalModelServer`, an `OpenAIClient`, an
`AsyncioRuntime` and `asyncio.run`). `simulate` builds whichever the `llm` argument asks for, starts and always
stops a local server when asked, and hands back one `SimulationResult`: the report, the books, the trace as
DataFrames and the reporters' DataFrames.

`simulate(RunConfig(...))` instead runs what `metropolis run` runs with the same options (`RunConfig` is the one
statement of them, cli/config.py): the Smallville personas, a player by name (`player`, `player_script`,
`player_pace`, `player_seconds`, `player_at`), the journal and checkpoints in `store`, the run folder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from metropolis.agents.player import PlayerAgent
from metropolis.agents.player_input import Command
from metropolis.agents.player_log import PLAYER_FILE, PlayerLog, read_script
from metropolis.cli import config
from metropolis.cli.llm_source import llm_endpoint
from metropolis.engine import Agent, Simulation
from metropolis.engine.collect import AgentReporter, DataCollector, ModelReporter
from metropolis.engine.simulation import SchedulerFactory
from metropolis.llm.accounting import Accounting, Prices
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.priority_gate import PriorityGate
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.llm.types import LLMBackend
from metropolis.runtime import AsyncioRuntime, Environment, RunReport, VirtualRuntime
from metropolis.runtime.horizon import PlayerHorizon
from metropolis.trace import Trace, TraceRecorder
from metropolis.world import World
from metropolis.world.generated import make_world

DEFAULT_PRESET = "l4-llama3-8b"


class RunConfig(config.RunConfig):
    """The options of `metropolis run` (cli/config.py), built in Python: a bad value is one line naming its key
    (`RunConfig: player_seconds must be > 0, got 0`), a ValueError as everywhere else."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ValueError(config.validation_line(error, "RunConfig: ")) from None


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a run gives back: `report` (steps, calls, time), `accounting` (tokens and cost per agent), `trace`
    (`trace.steps` and `trace.calls` are DataFrames), the reporters' frames `model` and `agents`, and with a
    player the commands its steps took (`player_inputs`, step -> commands: a script that replays the run)."""

    report: RunReport
    accounting: Accounting
    trace: Trace
    model: pd.DataFrame
    agents: pd.DataFrame
    folder: Path | None = None
    player_inputs: dict[int, tuple[Command, ...]] | None = None

    @property
    def steps(self) -> pd.DataFrame:
        return self.trace.steps

    @property
    def calls(self) -> pd.DataFrame:
        return self.trace.calls

    def summary(self) -> str:
        lines = self.report.lines() + self.accounting.summary(totals=False, simulated_seconds=self.simulated_seconds)
        return "\n".join(lines)

    @property
    def simulated_seconds(self) -> float:
        return self.report.steps * self.trace.meta.seconds_per_step


def simulate(
    agents: Sequence[Agent] | config.RunConfig,
    world: World | str = "open",
    *,
    scheduler: str | SchedulerFactory = "metropolis",
    llm: str | None = "virtual",
    gpus: int = 1,
    hours: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    start_hour: float = 0.0,
    model_reporters: Mapping[str, ModelReporter] | None = None,
    agent_reporters: Mapping[str, AgentReporter] | None = None,
    every: int = 1,
    price: str | Prices | None = None,
    out: Path | str | None = None,
    kind: str = "vllm",
    model: str = "default",
    player: PlayerAgent | None = None,
) -> SimulationResult:
    """Run `agents` in `world` for `hours` simulated hours (or `steps` steps) and return the result.

    `world`: a `World`, or a kind of `metropolis.world.generated.make_world` ("open", "rooms", "smallville").
    `llm`: "virtual" or "virtual:PRESET" (virtual time, a serving model of `gpus` replicas stands in for the
    GPUs), "local" (the local SmolLM2 server, started and stopped here), an OpenAI-compatible URL (`kind` says
    which server, `model` what to ask for), or None (agents that never call an LLM).
    `price`: a model of the price table or "PROMPT,COMPLETION" in USD per million tokens.
    `out`: a folder to write the trace (and `model.parquet` / `agents.parquet`) into; by default nothing is
    written.
    `player`: a person in the town (`metropolis.agents.player.PlayerAgent`), added after `agents`: its commands
    come from its `PlayerInput` (a script, or `push` from another thread in real time), its horizon's requests
    are interactive, and the commands it took are recorded (`player_inputs`; `trace/player.jsonl` with `out`).

    `agents` may be a `RunConfig` instead (`metropolis.RunConfig`, the options of `metropolis run`): the run is
    then the one `metropolis run` makes of them, with its run folder (`out_dir`, by default runs/<time>-<policy>)
    and its printed summary; e.g. `simulate(RunConfig(player="Visitor", hours=0.1, store="redis"))`. The other
    arguments are then left out (every option is in the config).
    """
    if isinstance(agents, config.RunConfig):
        if hours is not None or steps is not None or out is not None or player is not None:
            raise TypeError("simulate(RunConfig(...)) takes every option from the config: hours=, out_dir=, player=")
        return run_config(agents)
    the_world = make_world(world, seed=seed) if isinstance(world, str) else world
    until = _steps(the_world, hours, steps)
    everyone = [*agents, player] if player is not None else list(agents)
    sim = Simulation(
        the_world, everyone, until=until, scheduler=scheduler, seed=seed, start_seconds=start_hour * 3600,
        record_text=llm is not None and not llm.startswith("virtual"),
    )  # fmt: skip
    folder = None if out is None else Path(out)
    recorder = TraceRecorder.for_simulation(sim, None if folder is None else folder / "trace")
    collector = DataCollector(sim.agents, model_reporters, agent_reporters, every)
    sim.listeners += [recorder, collector]
    log = None
    if player is not None:
        log = PlayerLog(player, None if folder is None else folder / "trace" / PLAYER_FILE)
        sim.listeners.append(log)
    prices = Prices.parse(price) if isinstance(price, str) else price
    if llm is None or llm == "virtual" or llm.startswith("virtual:"):
        report, books = _virtual(sim, llm, gpus, prices)
    else:
        report, books = _real(sim, llm, kind, model, prices)
    recorder.close()
    if log is not None:
        log.close()
    if folder is not None:
        collector.write(folder / "trace")
    return SimulationResult(
        report, books, recorder.trace(), collector.model_frame(), collector.agent_frame(), folder,
        None if log is None else log.script,
    )  # fmt: skip


def run_config(options: config.RunConfig, checkpoint_minutes: float | None = None) -> SimulationResult:
    """What `metropolis run` does with `options` (no serial/lockstep comparison for the headline, no view)."""
    from metropolis.cli.run import execute  # the command line's run: loaded only when asked for
    from metropolis.cli.run_folder import RunFolder
    from metropolis.cli.run_setup import RunOptions
    from metropolis.runtime.checkpoint import DEFAULT_MINUTES

    opts = RunOptions(**options.model_dump()).resolved()
    folder = RunFolder.plan(opts.out_dir, opts.scheduler, opts.force)
    minutes = DEFAULT_MINUTES if checkpoint_minutes is None else checkpoint_minutes
    report, books, trace, path = execute(opts, folder, minutes, resume=False, compare=False)
    inputs = read_script(path / "trace" / PLAYER_FILE) if opts.player else None
    return SimulationResult(report, books, trace, pd.DataFrame(), pd.DataFrame(), path, inputs)


def _horizon(sim: Simulation, llm: LLMBackend) -> LLMBackend:
    player = next((a for a in sim.agents if isinstance(a, PlayerAgent)), None)
    return llm if player is None else PlayerHorizon(llm, sim, player)


def _steps(world: World, hours: float | None, steps: int | None) -> int:
    if (hours is None) == (steps is None):
        raise ValueError("say how long to run: hours=... or steps=..., not both")
    until = steps if steps is not None else round(float(hours or 0) * 3600 / world.seconds_per_step)
    if until < 1:
        raise ValueError(f"a run needs at least one step, got {until} (hours={hours}, steps={steps})")
    return until


def _virtual(sim: Simulation, llm: str | None, gpus: int, prices: Prices | None) -> tuple[RunReport, Accounting]:
    env = Environment()
    backend = None
    if llm is not None:
        name = llm.partition(":")[2] or DEFAULT_PRESET
        backend = VirtualLLM(env, Cluster(env, preset(name, gpus=gpus)))
    runtime = VirtualRuntime(sim, env, None if backend is None else _horizon(sim, backend))
    runtime.accounting.prices = prices
    return runtime.run(), runtime.accounting


def _real(sim: Simulation, llm: str, kind: str, model: str, prices: Prices | None) -> tuple[RunReport, Accounting]:
    async def go(cfg: EndpointConfig) -> tuple[RunReport, Accounting]:
        async with OpenAIClient(cfg) as client:
            gated = not cfg.send_priority and any(isinstance(a, PlayerAgent) for a in sim.agents)
            runtime = AsyncioRuntime(sim, _horizon(sim, PriorityGate(client) if gated else client))
            runtime.accounting.prices = prices
            return await runtime.run(), runtime.accounting

    with contextlib.ExitStack() as stack:
        cfg = stack.enter_context(llm_endpoint(llm, kind, model))
        return asyncio.run(go(cfg))
