"""`metropolis bench distributed`: the Ray runtime against the asyncio runtime, and its controller's cost at
1,000 agents (`metropolis.bench.distributed`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from metropolis.bench.distributed import BenchRow, cpu_bound_rows, many_agents_rows, store_rows
from metropolis.bench.loopback_llm import LoopbackLLM
from metropolis.cli.console import table_console
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import MAX_AGENTS, MAX_WORKERS, integer, number
from metropolis.cli.run_ray import NO_RAY

out = table_console()


def distributed(
    workers: int = typer.Option(2, "--workers", help="Ray workers."),
    agents: int = typer.Option(40, "--agents", help="CPU-bound agents."),
    steps: int = typer.Option(10, "--steps", help="Steps of the CPU-bound run."),
    cpu_ms: float = typer.Option(20.0, "--cpu-ms", help="CPU time of one CPU-bound step, in ms."),
    latency: float = typer.Option(0.05, "--latency", help="Loopback server latency of the CPU-bound run, in s."),
    many: int = typer.Option(1000, "--many", help="Agents of the many-agents run (0: skip it)."),
    many_steps: int = typer.Option(3, "--many-steps", help="Steps of the many-agents run."),
    many_latency: float = typer.Option(1.0, "--many-latency", help="Loopback latency of the many-agents run, s."),
    cpus: int = typer.Option(0, "--cpus", help="CPUs of the local Ray (0: this machine's)."),
    ray_address: str = typer.Option("", "--ray-address", help="Join this Ray cluster instead (auto, ray://...)."),
    save: Path | None = typer.Option(None, "--save", help="Write the rows as JSON."),
    stores: bool = typer.Option(True, "--stores/--no-stores", help="Also time a commit in Redis vs SQLite."),
) -> None:
    """CPU-bound agents on Ray workers vs the asyncio runtime (agent-steps/s), and 1,000 agents against a 1 s
    loopback server: requests in flight vs agents running, the controller's overhead per unit.

    Exit codes: 0 done, 2 bad input (or Ray missing), 130 interrupted."""
    _distributed(
        workers, agents, steps, cpu_ms, latency, many, many_steps, many_latency, cpus, ray_address, save, stores
    )


@one_line_errors
def _distributed(
    workers: int, agents: int, steps: int, cpu_ms: float, latency: float, many: int, many_steps: int,
    many_latency: float, cpus: int, ray_address: str, save: Path | None, stores: bool,
) -> None:  # fmt: skip
    integer(workers, "--workers", 1, MAX_WORKERS)
    integer(agents, "--agents", 1, MAX_AGENTS)
    integer(steps, "--steps", 1, 10_000)
    integer(many, "--many", 0, MAX_AGENTS)
    integer(many_steps, "--many-steps", 1, 10_000)
    integer(cpus, "--cpus", 0, 100_000)
    number(cpu_ms, "--cpu-ms", 0, 60_000)
    number(latency, "--latency", 0, 600)
    number(many_latency, "--many-latency", 0, 600)
    try:
        from metropolis.runtime.ray import ray_session
    except ImportError:
        raise ValueError(NO_RAY) from None
    rows: list[BenchRow] = []
    with ray_session(ray_address or None, cpus or None):
        with LoopbackLLM(latency) as server:
            rows += cpu_bound_rows(server.base_url, agents, steps, cpu_ms, workers)
        if many:
            with LoopbackLLM(many_latency) as server:
                rows += many_agents_rows(server.base_url, many, many_steps, workers)
    if stores:
        rows += store_rows()  # a local redis-server, started and stopped here
    out.print(table(rows))
    if save is not None:
        save.write_text(json.dumps([asdict(r) for r in rows], indent=2))


def table(rows: list[BenchRow]) -> Table:
    t = Table(title="metropolis bench distributed")
    for column in ("figure", "value", "target", "met"):
        t.add_column(column)
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "no")
        t.add_row(r.name, f"{r.value:,.2f} {r.unit}".rstrip(), r.target, met)
    return t
