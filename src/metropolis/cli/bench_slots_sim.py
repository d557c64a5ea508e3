"""`metropolis bench slots-sim`: one Smallville window through a real llama-server's slots, the server's own slot
reuse against LRU and invocation-distance save/restore, as one table."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.table import Table

from metropolis.bench.slots_sim import SimBenchConfig, WayResult, run_sim_bench
from metropolis.cli.bench_slots import SERVER_HELP
from metropolis.cli.errors import one_line_errors
from metropolis.llm.engines.llama_server import find_server

console = Console(width=160)


@one_line_errors
def slots_sim(
    server: str | None = typer.Option(None, "--server", help=SERVER_HELP),
    tiny: bool = typer.Option(False, "--tiny", help="A few seconds' run, for tests."),
) -> None:
    """A Smallville window through a real llama-server's slots: server reuse, LRU, invocation distance."""
    cfg = SimBenchConfig(agents=3, minutes=2, slots=2, prefix_words=100) if tiny else SimBenchConfig()
    err = Console(stderr=True)
    results = run_sim_bench(find_server(server), cfg, progress=lambda way: err.print(f"running {way} ..."))
    console.print(table(cfg, results))


def table(cfg: SimBenchConfig, results: list[WayResult]) -> Table:
    t = Table(
        title=f"Smallville {cfg.start_hour:g}h+{cfg.minutes:g}min, {cfg.agents} agents, {cfg.scheduler}, "
        f"llama-server SmolLM2-135M, {cfg.slots} slots, {cfg.in_flight or cfg.slots} in flight, 1 thread, "
        f"prefix ~{cfg.prefix_words} words per agent"
    )
    for col in ("way", "wall s", "server CPU s", "calls", "restores", "saves", "tokens evaluated",
                "of prompt tokens", "load avg before/after"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            r.way, f"{r.wall_s:.1f}", f"{r.server_cpu_s:.1f}", str(r.calls), str(r.restores), str(r.saves),
            f"{r.evaluated:,}", f"{r.evaluated / max(r.prompt_tokens, 1):.1%}",
            f"{r.load[0]:.2f} / {r.load[1]:.2f}",
        )  # fmt: skip
    by = {r.way: r for r in results}
    ours = by["invocation-distance"]
    lines = [
        f"invocation-distance over {base}: {by[base].wall_s / ours.wall_s:.2f}x wall, "
        f"{by[base].server_cpu_s / max(ours.server_cpu_s, 1e-9):.2f}x server CPU, "
        f"{by[base].evaluated / max(ours.evaluated, 1):.2f}x fewer tokens evaluated"
        for base in ("server", "lru")
    ]
    lines.append(f"histories identical in all ways; {os.cpu_count()} CPUs, shared: server CPU time is the figure")
    t.caption = "\n".join(lines)
    return t
