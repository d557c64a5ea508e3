"""`metropolis run`: one simulation, summarised, with its report and trace written to a run folder.

With no options: the 25 Smallville personas as built-in walkers under out-of-order scheduling, one simulated hour,
in virtual time on one modelled L4 GPU. `--llm local` (or a server URL) runs in real time against a real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from metropolis.agents.genagent import GenAgentConfig
from metropolis.agents.player_log import PLAYER_FILE, PlayerLog
from metropolis.cli import run_report
from metropolis.cli.config import RunConfig, checked, dump, given, load
from metropolis.cli.errors import (
    Interrupted,
    Terminated,
    exit_code,
    one_line,
    one_line_errors,
    quiet_abandoned_work,
    sigterm_as_interrupt,
)
from metropolis.cli.live_view import LiveView, live_view
from metropolis.cli.llm_source import llm_endpoint
from metropolis.cli.options import MAX_HOURS, number
from metropolis.cli.progress import StepProgress, agent_step_progress
from metropolis.cli.run_folder import RunFolder
from metropolis.cli.run_ray import ray_run
from metropolis.cli.run_setup import RunExtra, RunOptions, build_simulation, player_of, prices
from metropolis.engine import Simulation
from metropolis.llm.accounting import PRICE_TABLE, PRICES_AS_OF, Accounting, Prices
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.journal import Journal, JournalBackend, JournalResponder
from metropolis.llm.priority_gate import PriorityGate
from metropolis.llm.serving import Cluster, ReplayResponder, VirtualLLM, preset
from metropolis.llm.serving.responder import PlaceholderResponder, Recorded
from metropolis.llm.types import LLMBackend
from metropolis.memory.manager import MemoryStats
from metropolis.runtime import AsyncioRuntime, Environment, RunReport, VirtualRuntime
from metropolis.runtime.checkpoint import DEFAULT_MINUTES
from metropolis.runtime.durable import Durable
from metropolis.runtime.horizon import Horizon, PlayerHorizon
from metropolis.runtime.serving_memory import PrefetchOnCommit, memory_lines, run_memory
from metropolis.store import StaleEpoch
from metropolis.store.choice import check_reachable, new_store_key
from metropolis.trace import Trace, recorded_answers

out = Console()
GENAGENT_KEYS = ", ".join(f.name for f in dataclasses.fields(GenAgentConfig))
PRICED = f"{', '.join(PRICE_TABLE)}; list prices of {PRICES_AS_OF}"


def run(
    ctx: typer.Context,
    agents: int = typer.Option(None, "--agents", "-n", help="Personas (default 25; 3 with --llm or --replay)."),
    hours: float = typer.Option(1.0, "--hours", help="Simulated hours (360 steps of 10 s each per hour)."),
    start_hour: float = typer.Option(8.0, "--start-hour", help="Time of day the run starts (generative agents)."),
    scheduler: str = typer.Option(
        "metropolis", "--scheduler", "-s", help="serial, lockstep, metropolis or speculative."
    ),
    no_priority: bool = typer.Option(False, "--no-priority", help="Dispatch ready clusters FIFO, not by step."),
    members: str = typer.Option(
        "concurrent", "--members", help="How a cluster's members run: concurrent (same result) or serial (ablation)."
    ),
    runtime: str = typer.Option(
        "auto",
        "--runtime",
        help="virtual, asyncio or ray (steps on Ray workers; both need --llm), or auto (asyncio when --llm is set).",
    ),
    workers: int = typer.Option(None, "--workers", help="--runtime ray: worker actors (default: one per Ray CPU)."),
    ray_address: str = typer.Option(
        "", "--ray-address", help="--runtime ray: auto or ray://HOST:PORT joins a cluster (default: a local Ray)."
    ),
    unit_timeout: float = typer.Option(
        0.0, "--unit-timeout", help="--runtime ray: seconds before a silent worker's unit runs elsewhere (0: never)."
    ),
    llm: str = typer.Option("", "--llm", help="'local' (SmolLM2 on llama.cpp, started here) or a server URL."),
    kind: str = typer.Option(
        "vllm", "--kind", help="Dialect of a URL server: vllm, sglang, llama.cpp, ollama, openai."
    ),
    model: str = typer.Option("default", "--model", help="Model to request from a URL endpoint."),
    preset_name: str = typer.Option("l4-llama3-8b", "--preset", help="Serving-model preset for virtual time."),
    gpus: int = typer.Option(1, "--gpus", help="Data-parallel replicas of the serving model."),
    agent: str = typer.Option("auto", "--agent", help="walker, generative, or auto (generative with a real LLM)."),
    metric: str = typer.Option("euclidean", "--metric", help="Distance metric: euclidean or walking."),
    seed: int = typer.Option(0, "--seed", help="Run seed: the same seed gives the same simulation."),
    check: bool = typer.Option(False, "--check", help="Validate the causality invariant at every dispatch and commit."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Run folder (default: runs/<time>-<scheduler>, made unique); refused if it holds a run."
    ),
    replay: Path | None = typer.Option(
        None, "--replay", help="Answer every LLM call from this earlier run's folder (virtual time): same story."
    ),
    genagent: list[str] = typer.Option(
        [], "--genagent", help=f"Generative-agent setting KEY=VALUE (repeatable): {GENAGENT_KEYS}."
    ),
    price: str = typer.Option(
        "", "--price", help=f"USD per million tokens, PROMPT,COMPLETION, or a model ({PRICED}): prints a cost."
    ),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for one LLM answer before a retry."),
    attempts: int = typer.Option(6, "--attempts", help="Tries per LLM call before the run fails (exit code 3)."),
    force: bool = typer.Option(False, "--force", help="Let --out replace an earlier run's folder."),
    config: Path | None = typer.Option(
        None, "--config", help="Read options from this TOML file (keys: the long options, '_' for '-'); flags win."
    ),
    dump_config: Path | None = typer.Option(
        None, "--dump-config", help="Write the options (flags and --config) to this TOML file and stop."
    ),
    memory: str = typer.Option(
        "", "--memory", help="Model agent-aware serving memory (virtual time): lru or invocation-distance."
    ),
    fraction: float = typer.Option(
        0.25, "--fraction", help="With --memory: share of all agents' KV prefixes the GPU holds."
    ),
    view: bool = typer.Option(False, "--view", help="Watch the run in the browser (127.0.0.1; Ctrl-C ends the view)."),
    compare: bool = typer.Option(
        True, "--compare/--no-compare", help="Also time serial and lockstep (virtual time) for the headline."
    ),
    checkpoint_minutes: float = typer.Option(
        DEFAULT_MINUTES, "--checkpoint-minutes", help="Simulated minutes between checkpoints (0: none)."
    ),
    store: str = typer.Option(
        "sqlite",
        "--store",
        help="Journal and checkpoints: sqlite (a file in the run folder), redis (a local "
        "redis-server, started here) or redis://HOST:PORT/DB (a shared Redis).",
    ),
    player: str = typer.Option("", "--player", help="Add a person to the town by this name (docs/player.md)."),
    player_script: str = typer.Option(
        "", "--player-script", help="The player's commands: a JSON-lines script, or a run folder to replay."
    ),
    player_pace: str = typer.Option(
        "auto", "--player-pace", help="script, clock or input (auto: script in virtual time, clock in real time)."
    ),
    player_seconds: float = typer.Option(
        1.0, "--player-seconds", help="Wall seconds per player step (clock), or before an idle step (input)."
    ),
    player_at: str = typer.Option(
        "", "--player-at", help="The player's first tile X,Y (default: by the Lin family, in their house)."
    ),
) -> None:
    """Run a Smallville simulation and print a summary.

    Exit codes: 0 done, 2 bad input, 3 failed at run time (LLM server, a step), 130 interrupted (143 on
    SIGTERM); the run folder's meta.json says how the run ended. A run that stopped (even by kill -9)
    continues with `metropolis resume RUN`."""
    options = RunOptions(
        agents=agents, hours=hours, start_hour=start_hour, scheduler=scheduler, priority=not no_priority,
        members=members, runtime=runtime, workers=workers, ray_address=ray_address,
        unit_timeout=unit_timeout, llm=llm, kind=kind, model=model,
        preset=preset_name, gpus=gpus, agent=agent,
        metric=metric, seed=seed, check=check, out_dir=out_dir, replay=replay, genagent=tuple(genagent), price=price,
        timeout=timeout, attempts=attempts, force=force, memory=memory, fraction=fraction, store=store,
        player=player, player_script=player_script, player_pace=player_pace, player_seconds=player_seconds,
        player_at=player_at,
    )  # fmt: skip
    _configured(options, ctx, config, dump_config, view, compare, checkpoint_minutes)


@one_line_errors
def _configured(
    options: RunOptions,
    ctx: typer.Context,
    config: Path | None,
    dump_to: Path | None,
    view: bool,
    compare: bool,
    checkpoint_minutes: float,
) -> None:
    """The flags over the config file's keys (a flag left at its default leaves the file's value), then run or
    write the options out."""
    settled: set[str] = set()
    if config is not None:
        from_file = {k: v for k, v in load(config).items() if not given(ctx, k)}
        options = dataclasses.replace(options, **RunConfig.model_validate(from_file).model_dump(include=set(from_file)))
        settled |= set(from_file)
    open_keys = [k for k in RECORDED if not given(ctx, k) and k not in settled]
    if options.replay is not None:
        options = _as_recorded(options, open_keys)
    elif options.llm:
        options = _demo(options, open_keys)
    if dump_to is not None:
        known = {k: v for k, v in dataclasses.asdict(options).items() if k in RunConfig.model_fields}
        out.print(f"options written to {dump(checked(known), dump_to)}")
        return
    _run(options, view, compare, checkpoint_minutes)


# What a replay takes from the recorded run's meta.json, unless given: the same agents, day and settings.
RECORDED = ("agents", "hours", "start_hour", "agent", "genagent", "seed", "metric")
# The local-model demo (`run --llm ...`): the Lin family (they wake at home, side by side) from 6:58 am for 9
# simulated minutes: they wake, talk (7:00, measured: SmolLM2 on a shared 2-core machine) and plan their day, in
# a few minutes of wall time.
DEMO = {"start_hour": 6 + 58 / 60, "hours": 0.15}
DEMO_PICK = "pick_personas=household"


def _as_recorded(options: RunOptions, keys: list[str]) -> RunOptions:
    """`--replay runs/X` replays the run as it was recorded: the options it was made with, unless given here."""
    assert options.replay is not None
    meta = options.replay / "meta.json"
    if not meta.is_file():
        return options  # a bare trace folder: the flags say it all
    recorded = json.loads(meta.read_text(encoding="utf-8")).get("options", {})
    taken = {k: recorded[k] for k in keys if k in recorded}
    if "genagent" in taken:
        taken["genagent"] = tuple(taken["genagent"])
    return dataclasses.replace(options, **taken)


def _demo(options: RunOptions, keys: list[str]) -> RunOptions:
    """A run against a real model, with the demo's day where the flags leave it open."""
    changes: dict[str, Any] = {k: v for k, v in DEMO.items() if k in keys}
    if not any(p.startswith("pick_personas=") for p in options.genagent):
        changes["genagent"] = (*options.genagent, DEMO_PICK)
    return dataclasses.replace(options, **changes)


@one_line_errors
def _run(
    opts: RunOptions, view: bool = False, compare: bool = True, checkpoint_minutes: float = DEFAULT_MINUTES
) -> None:
    opts = opts.resolved()
    number(checkpoint_minutes, "--checkpoint-minutes", 0, MAX_HOURS * 60)
    folder = RunFolder.plan(opts.out_dir, opts.scheduler, opts.force)
    execute(opts, folder, checkpoint_minutes, resume=False, view=view, compare=compare)


def execute(
    opts: RunOptions,
    folder: RunFolder,
    checkpoint_minutes: float,
    resume: bool,
    view: bool = False,
    compare: bool = True,
) -> tuple[RunReport, Accounting, Trace, Path]:
    """Run (or, with `resume`, continue in an existing folder) the simulation `opts` describe, durably: the
    LLM journal and the checkpoints go to the folder's store, the trace to part files sealed at checkpoints.
    Gives back the report, the books, the trace and the run folder (for `metropolis.simulate(RunConfig(...))`)."""
    run_prices = prices(opts.price)
    # serial and lockstep for the headline: lockstep's re-run is forked now, before any thread starts
    along = run_report.Alongside.start(opts, lambda: _replay(opts)) if compare and opts.runtime == "virtual" else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())
        cfg = None
        if opts.llm:  # checked (or started) first: an unusable endpoint fails in seconds
            if opts.llm == "local":
                out.print("starting the local model server (SmolLM2 on llama.cpp; about 10 s) ...")
            started = time.perf_counter()
            cfg = stack.enter_context(
                llm_endpoint(opts.llm, opts.kind, opts.model, read_timeout=opts.timeout, max_attempts=opts.attempts)
            )
            out.print(f"LLM: {cfg.model} at {cfg.base_url} (ready after {time.perf_counter() - started:.1f} s)")
        check_reachable(opts.store)
        sim, what, extras = build_simulation(opts)
        responder = _replay(opts)
        path = folder.path if resume else folder.create(_meta(opts, what, checkpoint_minutes))
        store_key = str(folder.meta.get("store_key", ""))
        viewer: LiveView | None = None
        player = player_of(sim)
        if player is not None:  # its inputs, with their steps, beside the trace: replay with --player-script RUN
            player_log = PlayerLog(player, path / "trace" / PLAYER_FILE, resume=resume)
            stack.callback(player_log.close)
            sim.listeners.append(player_log)
        progress = stack.enter_context(agent_step_progress(sim))
        durable: Durable | None = None
        quiet_abandoned_work()  # a signal may drop a step's coroutine while unwinding, before any handler runs
        try:  # from here a signal or a failure is recorded in meta.json (and saves a checkpoint once there is one)
            virtual = opts.runtime == "virtual"
            durable = stack.enter_context(
                Durable.open(sim, path, virtual, checkpoint_minutes, resume, store=opts.store, key=store_key)
            )
            if view:
                viewer = live_view(sim, durable.recorder)
            if resume:
                out.print(durable.resuming())
                folder.finish("running", resumed=durable.checkpoint_number())
            if opts.runtime == "virtual":
                report, books = _virtual(sim, opts, responder, progress, run_prices, durable.journal, extras)
            elif opts.runtime == "ray":
                report, books = ray_run(sim, cfg, opts, progress, durable.journal, run_prices)
            else:
                report, books = _real(sim, cfg, progress, run_prices, durable.journal)
        except KeyboardInterrupt as stop:
            if durable is not None:
                durable.fence()  # StaleEpoch: another controller holds the run, and its folder
                durable.stop()
            if along is not None:
                along.stop()
            how = "terminated" if isinstance(stop, Terminated) else "interrupted"
            folder.finish(how, agent_steps_done=progress.done, agent_steps=progress.total)
            raise Interrupted(
                f"{how} after {progress.done:,} of {progress.total:,} agent-steps; what was recorded is in "
                f"{path} (meta.json, trace/); continue with: metropolis resume {path}",
                exit_code(stop),
            ) from None
        except StaleEpoch:
            raise  # another controller resumed the run: its folder and store are no longer this one's to write
        except Exception as error:
            if durable is not None:
                durable.fence()
                durable.stop()
            if along is not None:
                along.stop()
            folder.finish("failed", error=one_line(str(error)), agent_steps_done=progress.done)
            raise
        durable.finish()
    with sigterm_as_interrupt():
        try:
            trace, head = _write_report(opts, path, resume, durable, along, report, books, sim)
        except KeyboardInterrupt as stop:  # the simulation ended; its report did not
            if along is not None:
                along.stop()
            how = "terminated" if isinstance(stop, Terminated) else "interrupted"
            folder.finish(how, agent_steps_done=progress.done, agent_steps=progress.total, report="not written")
            raise Interrupted(
                f"{how} while writing the report, after every agent-step; continue with: metropolis resume {path}",
                exit_code(stop),
            ) from None
    out.print(f"[bold]metropolis run[/bold]: {what}")
    out.print(f"  [bold]{head.text()}[/bold]")
    for line in report.lines():
        out.print("  " + line)
    for extra in extras:
        extra.finish(path, out)
    if books.agents:
        (path / "accounting.json").write_text(json.dumps(books.rows(), indent=2))
    simulated = report.steps * sim.world.seconds_per_step
    per_agent = opts.runtime != "virtual" and bool(books.agents)
    for line in books.summary(per_agent=per_agent, totals=False, simulated_seconds=simulated):
        out.print("  " + line)
    folder.finish("completed", agent_steps_done=progress.done)
    if resume:
        out.print("  " + durable.summary())
    out.print(f"  run folder       {path} (report.html, report.json, trace/)")
    if viewer is not None:
        viewer.wait()
    return report, books, trace, path


def _write_report(
    opts: RunOptions, path: Path, resume: bool, durable: Durable, along: run_report.Alongside | None,
    report: RunReport, books: Accounting, sim: Simulation,
) -> tuple[Trace, run_report.Headline]:  # fmt: skip
    """The report files of a finished simulation: its trace, and the headline they were written with."""
    # A resumed run's recorder holds only what it recorded itself: the whole trace is in the folder.
    trace = Trace.read(path / "trace") if resume else durable.recorder.trace()
    compared = along.finish(trace.calls) if along is not None else {}
    head = run_report.headline(opts, report, sim.world.seconds_per_step, compared)
    run_report.write(path, opts, report, head, books.rows() if books.agents else [], trace)
    return trace, head


@dataclass(slots=True)
class MemorySummary:
    """What `--memory` prints after the report, and writes as memory.json."""

    stats: MemoryStats
    policy: str
    fraction: float

    def finish(self, folder: Path, console: Console) -> None:
        (folder / "memory.json").write_text(json.dumps(asdict(self.stats), indent=2))
        for line in memory_lines(self.stats, self.policy, self.fraction):
            console.print("  " + line)


def _meta(opts: RunOptions, what: str, checkpoint_minutes: float) -> dict[str, object]:
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    return {"what": what, "options": fields, "checkpoint_minutes": checkpoint_minutes, "store_key": new_store_key()}


def _replay(opts: RunOptions) -> ReplayResponder | None:
    """The recorded answers of `--replay`, read before the run folder is made (a bad folder leaves nothing)."""
    if opts.replay is None:
        return None
    folder = opts.replay / "trace" if (opts.replay / "trace").is_dir() else opts.replay
    return ReplayResponder({key: Recorded(*answer) for key, answer in recorded_answers(Trace.read(folder)).items()})


def _virtual(
    sim: Simulation,
    opts: RunOptions,
    responder: ReplayResponder | None,
    progress: StepProgress,
    run_prices: Prices | None,
    journal: Journal,
    extras: list[RunExtra],
) -> tuple[RunReport, Accounting]:
    """The run in virtual time; a serving-memory summary joins `extras` (printed after the report)."""
    env = Environment()
    player = player_of(sim)
    pinned = None if player is None else Horizon(sim, player).within  # a person waits for them: kept on the GPU
    memory = run_memory(sim, opts.memory, opts.fraction, opts.gpus, pinned=pinned) if opts.memory else None
    cluster = Cluster(env, preset(opts.preset, gpus=opts.gpus), memory=memory)
    if memory is not None:
        sim.listeners.append(PrefetchOnCommit(cluster.prefetch))
    answers = JournalResponder(responder if responder is not None else PlaceholderResponder(), journal)
    runtime = VirtualRuntime(sim, env, _horizon(sim, VirtualLLM(env, cluster, answers)))
    runtime.accounting.prices = run_prices
    report = runtime.run(progress)
    stats = cluster.memory_stats()
    if stats is not None:
        extras.append(MemorySummary(stats, opts.memory, opts.fraction))
    return report, runtime.accounting


def _horizon(sim: Simulation, llm: LLMBackend) -> LLMBackend:
    """With a player, the requests of agents within its horizon go to the server as interactive."""
    player = player_of(sim)
    return llm if player is None else PlayerHorizon(llm, sim, player)


def _real(
    sim: Simulation, cfg: EndpointConfig | None, progress: StepProgress, run_prices: Prices | None, journal: Journal
) -> tuple[RunReport, Accounting]:
    """The run's books are its accounting listener's; a failed call ends the run, so the client's own books
    (which count failures) add nothing to them. Every answer goes through the journal. With a player and a
    server without a priority field (llama-server), the client holds background requests while the person
    waits (llm/priority_gate.py)."""

    async def go() -> tuple[RunReport, Accounting]:
        if cfg is None:
            runtime = AsyncioRuntime(sim, None)
            runtime.accounting.prices = run_prices
            return await runtime.run(progress), runtime.accounting
        async with OpenAIClient(cfg, on_retry=progress.retry) as client:
            server: LLMBackend = client if cfg.send_priority or player_of(sim) is None else PriorityGate(client)
            runtime = AsyncioRuntime(sim, _horizon(sim, JournalBackend(server, journal)))
            runtime.accounting.prices = run_prices
            return await runtime.run(progress), runtime.accounting

    return asyncio.run(go())
