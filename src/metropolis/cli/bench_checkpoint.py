"""`metropolis bench checkpoint`: what checkpoints cost on the 24-hour 8-GPU virtual run, and a resume's time."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.table import Table

from metropolis.bench.checkpoint import run_checkpoint_bench
from metropolis.cli.console import table_console
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import MAX_HOURS, integer, number
from metropolis.cli.run_setup import RunOptions, build_simulation
from metropolis.engine import Simulation
from metropolis.runtime.checkpoint import DEFAULT_MINUTES

console = table_console()


@one_line_errors
def checkpoint(
    hours: float = typer.Option(24.0, "--hours", help="Simulated hours of the 25 walkers' run."),
    gpus: int = typer.Option(8, "--gpus", help="Replicas of the serving model."),
    minutes: float = typer.Option(DEFAULT_MINUTES, "--checkpoint-minutes", help="Simulated minutes between them."),
    repeat: int = typer.Option(1, "--repeat", help="Tries of each run, alternating; the fastest counts."),
) -> None:
    """Wall time with checkpoints off and on (target: <= 5% more), side by side, and the time to resume."""
    number(minutes, "--checkpoint-minutes", 0, MAX_HOURS * 60, low_open=True)
    integer(repeat, "--repeat", 1, 100)
    opts = RunOptions(hours=hours, gpus=gpus).resolved()

    def make_sim() -> Simulation:
        return build_simulation(opts)[0]

    with tempfile.TemporaryDirectory() as tmp, console.status("") as status:
        bench = run_checkpoint_bench(make_sim, opts.preset, gpus, minutes, Path(tmp), status.update, repeat)
    table = Table(title=f"Checkpoint overhead: 25 walkers, {hours:g} h, {opts.preset} x {gpus} (virtual time)")
    for col in ("run", "wall s", "vs checkpoints off"):
        table.add_column(col, justify="right")
    table.add_row("trace only (as before checkpoints)", f"{bench.trace_s:.2f}", f"{bench.trace_s / bench.off_s:.3f}")
    table.add_row("journal + trace parts, checkpoints off", f"{bench.off_s:.2f}", "1.000")
    table.add_row(
        f"checkpoints every {minutes:g} sim min ({bench.checkpoints}, {bench.checkpoint_s:.2f} s saving)",
        f"{bench.on_s:.2f}",
        f"{bench.on_s / bench.off_s:.3f}",
    )
    same = "same report" if bench.resumed_equal else "REPORT DIFFERS"
    table.add_row(
        f"resume from halfway, to the end ({same})", f"{bench.resume_s:.2f}", f"{bench.resume_s / bench.off_s:.3f}"
    )
    console.print(table)
    verdict = "within" if bench.overhead <= 0.05 else "above"
    console.print(f"checkpoint overhead {bench.overhead:+.1%} of the wall time ({verdict} the 5% target)")
    cpu = bench.on_cpu_s / bench.off_cpu_s - 1.0
    console.print(
        f"CPU time (every thread): {bench.off_cpu_s:.2f} s off, {bench.on_cpu_s:.2f} s on ({cpu:+.1%}); "
        "steadier than wall time where other work shares the cores"
    )
