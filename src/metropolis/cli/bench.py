"""`metropolis bench ...`: the benchmarks, printed as tables of ratios measured side by side in one run."""

from __future__ import annotations

import typer
from rich.table import Table

from metropolis.bench.endtoend import EndToEndRow, end_to_end_names, run_end_to_end
from metropolis.bench.scheduler import SchedulerBenchRow, run_scheduler_bench
from metropolis.cli import (
    bench_checkpoint,
    bench_distributed,
    bench_interactive,
    bench_kv_restore,
    bench_lora,
    bench_memory,
    bench_realtime,
    bench_sim,
    bench_slots,
    bench_slots_sim,
    bench_store,
    bench_view,
)
from metropolis.cli.console import table_console
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import MAX_AGENT_STEPS, MAX_AGENTS, integer
from metropolis.registry import check_name
from metropolis.scheduling import scheduler_names

app = typer.Typer(
    help="Benchmarks: scheduler micro-benchmark, simulation and memory comparisons.", no_args_is_help=True
)
console = table_console()
app.command("sim")(bench_sim.sim)
app.command("checkpoint")(bench_checkpoint.checkpoint)
app.command("store")(bench_store.store)


@app.command("scheduler")
@one_line_errors
def scheduler(
    agents: list[int] = typer.Option([100, 1000, 10000], "--agents", "-n", help="Agent counts (repeat the option)."),
    agent_steps: int = typer.Option(200_000, help="Synthetic agent-steps per row."),
    policy: list[str] = typer.Option(["metropolis", "lockstep"], "--scheduler", "-s", help="Schedulers to time."),
    end_to_end: str = typer.Option(
        "day,busy", "--end-to-end", help="End-to-end rows: day, busy (comma-separated), or none."
    ),
    micro: bool = typer.Option(True, "--micro/--no-micro", help="Run the controller micro-benchmark rows."),
) -> None:
    """Controller cost per scheduling decision and per agent-step, with synthetic completions and no LLM; then
    simulated LLM calls per wall second end to end: the modelled day of 25 walkers on 8 L4s, and the busy hour
    at 1,000 agents on 8 GPUs."""
    rows_e2e = end_to_end_names(end_to_end)
    for name in policy:
        check_name(name, scheduler_names(), "scheduler")
    if any(n < 1 for n in agents) or agent_steps < 1:
        raise ValueError("--agents and --agent-steps must be >= 1")
    for n in agents:
        integer(n, "--agents", 1, MAX_AGENTS)  # 100,000,000 agents would allocate ~50 GiB
    integer(agent_steps, "--agent-steps", 1, MAX_AGENT_STEPS)
    with console.status("") as status:
        if micro:
            rows = run_scheduler_bench(agents, policy, agent_steps, progress=lambda m: status.update(f"timing {m}"))
            console.print(_micro_table(rows))
        if rows_e2e:
            ends = run_end_to_end(rows_e2e, progress=lambda m: status.update(f"timing {m}"))
            console.print(_end_to_end_table(ends))


def _micro_table(rows: list[SchedulerBenchRow]) -> Table:
    table = Table(title="Scheduler micro-benchmark (controller time only; random walkers at Smallville density)")
    for col in (
        "scheduler",
        "agents",
        "agent-steps",
        "decisions",
        "controller s",
        "us / decision",
        "us / agent-step",
        "units in flight",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.scheduler,
            f"{r.agents:,}",
            f"{r.agent_steps:,}",
            f"{r.decisions:,}",
            f"{r.controller_seconds:.2f}",
            f"{r.us_per_decision:.1f}",
            f"{r.us_per_agent_step:.1f}",
            f"{r.mean_ready_units:.0f}",
        )
    return table


def _end_to_end_table(rows: list[EndToEndRow]) -> Table:
    table = Table(title="End to end in virtual time (metropolis, l4-llama3-8b; simulated LLM calls per wall second)")
    for col in ("row", "agent-steps", "LLM calls", "virtual s", "wall s", "calls / wall s", "CPU s", "calls / CPU s"):
        table.add_column(col, justify="right")
    table.caption = f"code: {rows[0].build}" if rows else None  # compiled (mypyc) or pure Python
    for r in rows:
        table.add_row(
            r.row,
            f"{r.agent_steps:,}",
            f"{r.llm_calls:,}",
            f"{r.virtual_seconds:.2f}",
            f"{r.wall_seconds:.2f}",
            f"{r.calls_per_second:,.0f}",
            f"{r.cpu_seconds:.2f}",
            f"{r.calls_per_cpu_second:,.0f}",
        )
    return table


app.command("memory")(bench_memory.memory)
app.command("kv-restore")(bench_kv_restore.kv_restore)
app.command("slots")(bench_slots.slots)
app.command("slots-sim")(bench_slots_sim.slots_sim)
app.command("realtime")(bench_realtime.realtime)
app.command("interactive")(bench_interactive.interactive)
app.command("distributed")(bench_distributed.distributed)
app.command("lora")(bench_lora.lora)
app.command("view")(bench_view.view)
