"""`metropolis bench view`: the live view's cost to a run, side by side in one run (`metropolis.bench.view`)."""

from __future__ import annotations

import shutil

import typer
from rich.console import Console
from rich.table import Table

from metropolis.bench.view import MODES, ViewCost, run_view_bench
from metropolis.bench.view_client import CHROMIUM
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import integer, number
from metropolis.registry import check_name
from metropolis.scheduling import scheduler_names

console = Console(stderr=True)
out = Console(width=100)  # the table's 8 columns stay on one line when printed to a file


def view(
    hours: float = typer.Option(3.0, "--hours", help="Simulated hours of each run (25 walkers, one modelled L4)."),
    repeats: int = typer.Option(3, "--repeats", help="Runs of each way, interleaved; medians are printed."),
    scheduler: str = typer.Option("metropolis", "--scheduler", "-s", help="The policy of the run."),
    browser: bool = typer.Option(True, "--browser/--no-browser", help="Also time a run watched by chromium."),
) -> None:
    """The same virtual run with no view, with the live view and nobody watching, and with headless chromium
    following it: wall-clock and CPU time, and their ratios to the run without a view."""
    _view(hours, repeats, scheduler, browser)


@one_line_errors
def _view(hours: float, repeats: int, scheduler: str, browser: bool) -> None:
    number(hours, "--hours", 0, 24, low_open=True)
    integer(repeats, "--repeats", 1, 50)
    check_name(scheduler, scheduler_names(), "scheduler")
    if browser:
        missing = _missing_browser()
        if missing:
            raise ValueError(f"{missing}; or leave the browser out with --no-browser")
    with console.status("") as status:
        rows = run_view_bench(hours, repeats, scheduler, browser, progress=lambda m: status.update(f"timing {m}"))
    out.print(_table(rows, hours, scheduler, repeats))
    for watched in rows[1:]:
        out.print(
            f"the live view's cost, {watched.mode}: {100 * (watched.median('wall_ratio') - 1):+.1f} % wall-clock, "
            f"{100 * (watched.median('cpu_ratio') - 1):+.1f} % CPU in this process"
        )
    out.print("(medians of per-repeat ratios; x: to the run without a view)")


def _missing_browser() -> str:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if shutil.which(CHROMIUM) is None:
        return f"chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    return ""


def _table(rows: list[ViewCost], hours: float, scheduler: str, repeats: int) -> Table:
    table = Table(title=f"The live view's cost: 25 walkers, {hours:g} h, {scheduler}, 1 L4 (medians of {repeats})")
    for col in ("run", "wall s", "x", "run CPU s", "server CPU s", "CPU x", "chromium CPU s", "frames"):
        table.add_column(col, justify="right")
    for r in rows:
        shown = [s["shown"] + 1 for s in r.seen]
        table.add_row(
            r.mode,
            f"{r.wall_s:.2f}",
            f"{r.median('wall_ratio'):.3f}",
            f"{r.cpu_s:.2f}",
            f"{r.median('server_cpu'):.2f}",
            f"{r.median('cpu_ratio'):.3f}",
            f"{r.median('browser_cpu'):.2f}" if r.mode in MODES[2:] else "",
            f"{min(shown):,}" if shown else "",
        )
    return table
