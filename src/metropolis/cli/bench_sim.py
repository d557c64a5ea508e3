"""`metropolis bench sim`: serial, lockstep, metropolis (with and without priority) and the oracle on the same
Smallville workload, in virtual time, printed as the AI Metropolis paper's table, with CSV and plots."""

from __future__ import annotations

import csv
import time
from datetime import datetime
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from metropolis.bench.plots import in_flight_plot, speedup_plot
from metropolis.bench.sim import (
    BOUNDS,
    COST_TERMS,
    HEADLINE_POLICIES,
    SettingResult,
    default_settings,
    gpus_words,
    rows,
    run_setting,
)
from metropolis.cli.console import table_console
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import MAX_HOURS, number, positive_ints, some_names, writable_folder
from metropolis.cli.progress import agent_step_bar
from metropolis.registry import check_name
from metropolis.report.bench import write_bench_report
from metropolis.report.tables import SIM
from metropolis.scheduling.speculative import Window
from metropolis.workloads.scaling import METRICS, MODES
from metropolis.world.smallville import load_smallville

console = table_console(150)  # the policy table is wide


@one_line_errors
def sim(
    setting: str = typer.Option("day-25,busy,quiet", "--setting", help="Comma-separated: day-25, busy, quiet."),
    agents: str = typer.Option("25,100,500,1000", "--agents", help="Agent counts for the busy and quiet hours."),
    gpus: str | None = typer.Option(None, "--gpus", help="GPU counts (default: 1,8 for day-25, 8 for the hours)."),
    hours: float | None = typer.Option(None, "--hours", help="Shorten every window to this many hours (fast runs)."),
    mode: str = typer.Option(
        "copies", "--mode", help="More than 25 agents as 'copies' of the town or one 'large' town."
    ),
    metric: str = typer.Option(
        "euclidean", "--metric", help="Distance for R and the rules: euclidean (the paper's) or walking (walls count)."
    ),
    seed: int = typer.Option(0, "--seed", help="Workload seed."),
    cost: str = typer.Option(
        "", "--cost", help="Scale serving cost terms, e.g. prefill=2,decode=0.5 (iteration, prefill, decode, kv)."
    ),
    speculation: str = typer.Option(
        "",
        "--speculation",
        help=(
            "The speculative row's window, e.g. depth=16,share=0.5 (depth, share, budget, guess, still; "
            "apart=0 runs each cluster as one unit)."
        ),
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder for CSV and plots (default runs/bench-sim-<time>)."),
) -> None:
    """The AI Metropolis comparison on generated Smallville workloads (Llama-3-8B on modelled L4 GPUs)."""
    which = some_names(setting, "--setting")
    if hours is not None:
        number(hours, "--hours", 10 / 3600, MAX_HOURS)  # at least one 10 s step
    check_name(mode, MODES, "--mode")
    check_name(metric, METRICS, "--metric")
    settings = default_settings(
        which, positive_ints(agents, "--agents"), positive_ints(gpus, "--gpus") if gpus else None, hours, mode, metric
    )
    if hours is not None and hours <= 0:
        raise ValueError(f"--hours must be > 0, got {hours}")
    scale = _cost_scale(cost)
    window = Window.parse(speculation) if speculation else None
    folder = writable_folder(out or Path("runs") / f"bench-sim-{datetime.now():%Y%m%d-%H%M%S}", "--out")
    town = load_smallville()
    results: list[SettingResult] = []
    with agent_step_bar() as bar:
        task = bar.add_task("generating", total=None)
        for s in settings:
            t0 = time.perf_counter()
            bar.update(task, description=f"{s.label}: generating", completed=0, total=None)
            result = run_setting(
                town,
                s,
                seed=seed,
                progress=lambda m, d, t: bar.update(task, description=m, completed=d, total=t),
                cost_scale=scale,
                window=window,
            )
            results.append(result)
            console.print(f"[dim]{s.label}: {result.workload_calls:,} calls, {time.perf_counter() - t0:.0f} s[/dim]")
    _print(results)
    folder.mkdir(parents=True, exist_ok=True)  # only now: a failed run leaves no empty folder
    _write(results, folder)
    console.print(f"wrote {folder}/bench_sim.csv, plots and report.html")


def _print(results: list[SettingResult]) -> None:
    """One table per setting (its title names it), the columns of the HTML report: each fits 100 columns."""
    console.print("[bold]Simulated time per policy, same workload (virtual time, l4-llama3-8b)[/bold]")
    for title, cells in SIM.split([row for r in results for row in rows(r)]):
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for i, col in enumerate(cells[0]):
            table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for i, row in enumerate(cells):
            table.add_row(*row.values(), end_section=i == len(cells) - len(BOUNDS) - 1)
        console.print(table)


def _cost_scale(text: str) -> dict[str, float]:
    """`prefill=2,decode=0.5` -> {"prefill": 2.0, "decode": 0.5}, each term checked."""
    out: dict[str, float] = {}
    for part in some_names(text, "--cost") if text else []:
        term, sep, value = part.partition("=")
        check_name(term, COST_TERMS, "--cost term")
        try:
            factor = float(value) if sep else float("nan")
        except ValueError:
            factor = float("nan")
        if not factor > 0:
            raise ValueError(f"--cost {part!r}: write TERM=FACTOR with a factor > 0, e.g. prefill=2")
        out[term] = factor
    return out


def _hms(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def _write(results: list[SettingResult], folder: Path) -> None:
    records = [row for r in results for row in rows(r)]
    with (folder / "bench_sim.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    speedup_plot(results, folder / "speedup_vs_agents.png")
    images = [("Speed-up over serial, by number of agents", folder / "speedup_vs_agents.png")]
    for r in results:
        s = r.setting
        name = folder / f"in_flight_{s.name}_{s.agents}a_{s.gpus}g.png"
        in_flight_plot(r, name)
        images.append((f"LLM requests in flight: {s.label}", name))
    best = max(
        (row for row in records if row["policy"] in HEADLINE_POLICIES),
        key=lambda row: float(str(row["speedup_over_serial"])),
    )
    headline = (
        f"{best['policy']} runs {float(str(best['speedup_over_serial'])):.2f}x faster than serial, "
        f"{float(str(best['share_of_oracle'])):.1%} of the oracle ({best['setting']}, {best['agents']} agents, "
        f"{gpus_words(int(str(best['gpus'])))}, virtual time)"
    )
    write_bench_report(
        folder / "report.html", "Metropolis bench sim", headline, [("Simulated time per policy", records)], images,
        note="One table per setting; bench_sim.csv beside this page has every column.", view=SIM,
    )  # fmt: skip
