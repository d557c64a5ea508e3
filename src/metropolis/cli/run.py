"""`metropolis run`: one simulation, summarised, with its report and trace written to a run folder.

With no options: the 25 Smallville personas as built-in walkers under out-of-order scheduling, one simulated hour,
in virtual time on one modelled L4 GPU. `--llm local` (or a server URL) runs in real time against a real model.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console

from metropolis.cli.errors import one_line_errors
from metropolis.cli.llm_source import llm_endpoint
from metropolis.cli.progress import agent_step_progress
from metropolis.cli.run_setup import RunOptions, build_simulation
from metropolis.engine import Simulation
from metropolis.llm.accounting import Accounting, Prices
from metropolis.llm.client import OpenAIClient
from metropolis.llm.serving import Cluster, ReplayResponder, VirtualLLM, preset
from metropolis.runtime import AsyncioRuntime, Environment, RunReport, VirtualRuntime
from metropolis.trace import Trace, TraceRecorder, recorded_answers

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
    out_dir: Path | None = typer.Option(None, "--out", help="Run folder (default: runs/<time>-<scheduler>)."),
    replay: Path | None = typer.Option(
        None, "--replay", help="Answer every LLM call from this earlier run's folder (virtual time): same story."
    ),
    genagent: list[str] = typer.Option([], "--genagent", help="Generative-agent setting KEY=VALUE (repeatable)."),
    price: str = typer.Option("", "--price", help="USD per million tokens, PROMPT,COMPLETION: prints a cost."),
) -> None:
    """Run a Smallville simulation and print a summary."""
    options = RunOptions(
        agents=agents, hours=hours, start_hour=start_hour, scheduler=scheduler, priority=not no_priority,
        runtime=runtime, llm=llm, kind=kind, model=model, preset=preset_name, gpus=gpus, agent=agent, metric=metric,
        seed=seed, check=check, out_dir=out_dir, replay=replay, genagent=tuple(genagent), price=price,
    )  # fmt: skip
    _run(options)


@one_line_errors
def _run(opts: RunOptions) -> None:
    opts = opts.resolved()
    folder = opts.out_dir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{opts.scheduler}"
    sim, what, extras = build_simulation(opts)
    recorder = TraceRecorder.for_simulation(sim, folder / "trace")
    sim.listeners.append(recorder)
    prices = _prices(opts.price)
    report, books = _virtual(sim, opts, prices) if opts.runtime == "virtual" else _real(sim, opts, prices)
    recorder.close()
    for extra in extras:
        extra.finish(folder, out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(asdict(report), indent=2))
    out.print(f"[bold]metropolis run[/bold]: {what}")
    for line in report.lines():
        out.print("  " + line)
    if books.agents:
        (folder / "accounting.json").write_text(json.dumps(books.rows(), indent=2))
    for line in books.summary(per_agent=opts.runtime != "virtual" and bool(books.agents), totals=False):
        out.print("  " + line)
    out.print(f"  run folder       {folder} (report.json, trace/)")


def _prices(text: str) -> Prices | None:
    if not text:
        return None
    try:
        prompt, completion = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--price takes PROMPT,COMPLETION in USD per million tokens, got {text!r}") from None
    return Prices(prompt, completion)


def _virtual(sim: Simulation, opts: RunOptions, prices: Prices | None) -> tuple[RunReport, Accounting]:
    env = Environment()
    responder = None
    if opts.replay is not None:
        folder = opts.replay / "trace" if (opts.replay / "trace").is_dir() else opts.replay
        responder = ReplayResponder(recorded_answers(Trace.read(folder)))
    llm = VirtualLLM(env, Cluster(env, preset(opts.preset, gpus=opts.gpus)), responder)
    runtime = VirtualRuntime(sim, env, llm)
    runtime.accounting.prices = prices
    with agent_step_progress(sim) as advance:
        return runtime.run(advance), runtime.accounting


def _real(sim: Simulation, opts: RunOptions, prices: Prices | None) -> tuple[RunReport, Accounting]:
    """The run's books are its accounting listener's; a failed call ends the run, so the client's own books
    (which count failures) add nothing to them."""

    async def go(client: OpenAIClient | None) -> tuple[RunReport, Accounting]:
        runtime = AsyncioRuntime(sim, client)
        runtime.accounting.prices = prices
        with agent_step_progress(sim) as advance:
            return await runtime.run(advance), runtime.accounting

    if not opts.llm:
        return asyncio.run(go(None))
    with llm_endpoint(opts.llm, opts.kind, opts.model) as cfg:
        out.print(f"LLM: {cfg.model} at {cfg.base_url}")

        async def with_client() -> tuple[RunReport, Accounting]:
            async with OpenAIClient(cfg) as client:
                return await go(client)

        return asyncio.run(with_client())
