"""`metropolis run`: one simulation, summarised, with its report and trace written to a run folder.

With no options: the 25 Smallville personas as built-in walkers under out-of-order scheduling, one simulated hour,
in virtual time on one modelled L4 GPU. `--llm local` (or a server URL) runs in real time against a real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console

from metropolis.cli.errors import (
    Interrupted,
    Terminated,
    exit_code,
    one_line,
    one_line_errors,
    quiet_abandoned_work,
    sigterm_as_interrupt,
)
from metropolis.cli.llm_source import llm_endpoint
from metropolis.cli.options import MAX_HOURS, number
from metropolis.cli.progress import StepProgress, agent_step_progress
from metropolis.cli.run_folder import RunFolder
from metropolis.cli.run_setup import RunOptions, build_simulation, prices
from metropolis.engine import Simulation
from metropolis.llm.accounting import Accounting, Prices
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.journal import Journal, JournalBackend, JournalResponder
from metropolis.llm.serving import Cluster, ReplayResponder, VirtualLLM, preset
from metropolis.llm.serving.responder import PlaceholderResponder
from metropolis.runtime import AsyncioRuntime, Environment, RunReport, VirtualRuntime
from metropolis.runtime.checkpoint import DEFAULT_MINUTES
from metropolis.runtime.durable import Durable
from metropolis.trace import Trace, recorded_answers

out = Console()


def run(
    agents: int = typer.Option(None, "--agents", "-n", help="Personas (default 25; 3 with --llm or --replay)."),
    hours: float = typer.Option(1.0, "--hours", help="Simulated hours (360 steps of 10 s each per hour)."),
    start_hour: float = typer.Option(8.0, "--start-hour", help="Time of day the run starts (generative agents)."),
    scheduler: str = typer.Option("metropolis", "--scheduler", "-s", help="serial, lockstep or metropolis."),
    no_priority: bool = typer.Option(False, "--no-priority", help="Dispatch ready clusters FIFO, not by step."),
    runtime: str = typer.Option("auto", "--runtime", help="virtual, asyncio, or auto (asyncio when --llm is set)."),
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
    genagent: list[str] = typer.Option([], "--genagent", help="Generative-agent setting KEY=VALUE (repeatable)."),
    price: str = typer.Option("", "--price", help="USD per million tokens, PROMPT,COMPLETION: prints a cost."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for one LLM answer before a retry."),
    attempts: int = typer.Option(6, "--attempts", help="Tries per LLM call before the run fails (exit code 3)."),
    force: bool = typer.Option(False, "--force", help="Let --out replace an earlier run's folder."),
    checkpoint_minutes: float = typer.Option(
        DEFAULT_MINUTES, "--checkpoint-minutes", help="Simulated minutes between checkpoints (0: none)."
    ),
) -> None:
    """Run a Smallville simulation and print a summary.

    Exit codes: 0 done, 2 bad input, 3 failed at run time (LLM server, a step), 130 interrupted (143 on
    SIGTERM); the run folder's meta.json says how the run ended. A run that stopped (even by kill -9)
    continues with `metropolis resume RUN`."""
    options = RunOptions(
        agents=agents, hours=hours, start_hour=start_hour, scheduler=scheduler, priority=not no_priority,
        runtime=runtime, llm=llm, kind=kind, model=model, preset=preset_name, gpus=gpus, agent=agent, metric=metric,
        seed=seed, check=check, out_dir=out_dir, replay=replay, genagent=tuple(genagent), price=price,
        timeout=timeout, attempts=attempts, force=force,
    )  # fmt: skip
    _run(options, checkpoint_minutes)


@one_line_errors
def _run(opts: RunOptions, checkpoint_minutes: float) -> None:
    opts = opts.resolved()
    number(checkpoint_minutes, "--checkpoint-minutes", 0, MAX_HOURS * 60)
    folder = RunFolder.plan(opts.out_dir, opts.scheduler, opts.force)
    execute(opts, folder, checkpoint_minutes, resume=False)


def execute(opts: RunOptions, folder: RunFolder, checkpoint_minutes: float, resume: bool) -> None:
    """Run (or, with `resume`, continue in an existing folder) the simulation `opts` describe, durably: the
    LLM journal and the checkpoints go to the folder's store, the trace to part files sealed at checkpoints."""
    run_prices = prices(opts.price)
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())
        cfg = None
        if opts.llm:  # checked (or started) first: an unusable endpoint fails in seconds
            cfg = stack.enter_context(
                llm_endpoint(opts.llm, opts.kind, opts.model, read_timeout=opts.timeout, max_attempts=opts.attempts)
            )
            out.print(f"LLM: {cfg.model} at {cfg.base_url}")
        sim, what, extras = build_simulation(opts)
        responder = _replay(opts)
        path = folder.path if resume else folder.create(_meta(opts, what, checkpoint_minutes))
        progress = stack.enter_context(agent_step_progress(sim))
        durable: Durable | None = None
        quiet_abandoned_work()  # a signal may drop a step's coroutine while unwinding, before any handler runs
        try:  # from here a signal or a failure is recorded in meta.json (and saves a checkpoint once there is one)
            virtual = opts.runtime == "virtual"
            durable = stack.enter_context(Durable.open(sim, path, virtual, checkpoint_minutes, resume))
            if resume:
                out.print(durable.resuming())
                folder.finish("running", resumed=durable.checkpoint_number())
            if opts.runtime == "virtual":
                report, books = _virtual(sim, opts, responder, progress, run_prices, durable.journal)
            else:
                report, books = _real(sim, cfg, progress, run_prices, durable.journal)
        except KeyboardInterrupt as stop:
            if durable is not None:
                durable.stop()
            how = "terminated" if isinstance(stop, Terminated) else "interrupted"
            folder.finish(how, agent_steps_done=progress.done, agent_steps=progress.total)
            raise Interrupted(
                f"{how} after {progress.done:,} of {progress.total:,} agent-steps; what was recorded is in "
                f"{path} (meta.json, trace/); continue with: metropolis resume {path}",
                exit_code(stop),
            ) from None
        except Exception as error:
            if durable is not None:
                durable.stop()
            folder.finish("failed", error=one_line(str(error)), agent_steps_done=progress.done)
            raise
        durable.finish()
    for extra in extras:
        extra.finish(path, out)
    (path / "report.json").write_text(json.dumps(asdict(report), indent=2))
    out.print(f"[bold]metropolis run[/bold]: {what}")
    for line in report.lines():
        out.print("  " + line)
    if books.agents:
        (path / "accounting.json").write_text(json.dumps(books.rows(), indent=2))
    for line in books.summary(per_agent=opts.runtime != "virtual" and bool(books.agents), totals=False):
        out.print("  " + line)
    folder.finish("completed", agent_steps_done=progress.done)
    if resume:
        out.print("  " + durable.summary())
    out.print(f"  run folder       {path} (report.json, trace/)")


def _meta(opts: RunOptions, what: str, checkpoint_minutes: float) -> dict[str, object]:
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    return {"what": what, "options": fields, "checkpoint_minutes": checkpoint_minutes}


def _replay(opts: RunOptions) -> ReplayResponder | None:
    """The recorded answers of `--replay`, read before the run folder is made (a bad folder leaves nothing)."""
    if opts.replay is None:
        return None
    folder = opts.replay / "trace" if (opts.replay / "trace").is_dir() else opts.replay
    return ReplayResponder(recorded_answers(Trace.read(folder)))


def _virtual(
    sim: Simulation,
    opts: RunOptions,
    responder: ReplayResponder | None,
    progress: StepProgress,
    run_prices: Prices | None,
    journal: Journal,
) -> tuple[RunReport, Accounting]:
    env = Environment()
    answers = JournalResponder(responder if responder is not None else PlaceholderResponder(), journal)
    llm = VirtualLLM(env, Cluster(env, preset(opts.preset, gpus=opts.gpus)), answers)
    runtime = VirtualRuntime(sim, env, llm)
    runtime.accounting.prices = run_prices
    return runtime.run(progress), runtime.accounting


def _real(
    sim: Simulation, cfg: EndpointConfig | None, progress: StepProgress, run_prices: Prices | None, journal: Journal
) -> tuple[RunReport, Accounting]:
    """The run's books are its accounting listener's; a failed call ends the run, so the client's own books
    (which count failures) add nothing to them. Every answer goes through the journal."""

    async def go() -> tuple[RunReport, Accounting]:
        if cfg is None:
            runtime = AsyncioRuntime(sim, None)
            runtime.accounting.prices = run_prices
            return await runtime.run(progress), runtime.accounting
        async with OpenAIClient(cfg, on_retry=progress.retry) as client:
            runtime = AsyncioRuntime(sim, JournalBackend(client, journal))
            runtime.accounting.prices = run_prices
            return await runtime.run(progress), runtime.accounting

    return asyncio.run(go())
