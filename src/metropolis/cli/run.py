"""`metropolis run`: one simulation, summarised. With no options: the 25 Smallville personas as built-in walkers
under out-of-order scheduling, in virtual time on one modelled L4 GPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from metropolis.agents import RandomWalker, WalkerConfig
from metropolis.cli.errors import one_line_errors
from metropolis.engine import Simulation
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.runtime import Environment, RunReport, VirtualRuntime
from metropolis.scheduling import scheduler_names
from metropolis.world.smallville import Town, load_smallville

console = Console(stderr=True)
out = Console()

# Generative Agents makes about 56,700 calls a day for 25 agents: 0.26 calls per agent-step.
WALKER_CALLS_PER_STEP = 56_700 / (25 * 8_640)


def run(
    agents: int = typer.Option(25, "--agents", "-n", help="How many of the 25 Smallville personas."),
    hours: float = typer.Option(1.0, "--hours", help="Simulated hours (360 steps of 10 s each per hour)."),
    scheduler: str = typer.Option("metropolis", "--scheduler", "-s", help="serial, lockstep or metropolis."),
    no_priority: bool = typer.Option(
        False, "--no-priority", help="Dispatch ready clusters FIFO, not lowest step first."
    ),
    preset_name: str = typer.Option("l4-llama3-8b", "--preset", help="Serving-model preset for virtual time."),
    gpus: int = typer.Option(1, "--gpus", help="Data-parallel replicas of the serving model."),
    metric: str = typer.Option("euclidean", "--metric", help="Distance metric: euclidean or walking."),
    seed: int = typer.Option(0, "--seed", help="Run seed: the same seed gives the same simulation."),
    check: bool = typer.Option(False, "--check", help="Validate the causality invariant at every commit."),
    out_dir: Path | None = typer.Option(None, "--out", help="Write report.json here."),
) -> None:
    """Run a Smallville simulation and print a summary."""
    _run(agents, hours, scheduler, not no_priority, preset_name, gpus, metric, seed, check, out_dir)


@one_line_errors
def _run(
    agents: int,
    hours: float,
    scheduler: str,
    priority: bool,
    preset_name: str,
    gpus: int,
    metric: str,
    seed: int,
    check: bool,
    out_dir: Path | None,
) -> None:
    if scheduler not in scheduler_names():
        raise ValueError(f"unknown scheduler {scheduler!r}; choose one of: {', '.join(scheduler_names())}")
    if hours <= 0:
        raise ValueError(f"--hours must be > 0, got {hours}")
    if gpus < 1:
        raise ValueError(f"--gpus must be >= 1, got {gpus}")
    town = load_smallville(metric=metric, agents=agents)
    steps = max(1, round(hours * 3600 / town.world.seconds_per_step))
    sim = walker_simulation(town, steps, scheduler, priority, seed, check)
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, preset(preset_name, gpus=gpus)))
    report = _with_progress(sim, lambda progress: VirtualRuntime(sim, env, llm).run(progress))
    _print(report, f"{len(sim.agents)} Smallville personas as random walkers, {preset_name} x {gpus}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(asdict(report), indent=2))


def walker_simulation(town: Town, steps: int, scheduler: str, priority: bool, seed: int, check: bool) -> Simulation:
    config = WalkerConfig(call_prob=WALKER_CALLS_PER_STEP)
    walkers = [RandomWalker(p.name, p.spawn, config) for p in town.personas]
    return Simulation(
        town.world, walkers, steps=steps, scheduler=scheduler, priority=priority, seed=seed, check_causality=check
    )


def _with_progress(sim: Simulation, go: Callable[[Callable[[int], None]], RunReport]) -> RunReport:
    total = len(sim.agents) * sim.steps
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} agent-steps"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(sim.scheduler.name, total=total)
        return go(lambda n: bar.advance(task, n))


def _print(report: RunReport, what: str) -> None:
    out.print(f"[bold]metropolis run[/bold]: {what}")
    for line in report.lines():
        out.print("  " + line)
