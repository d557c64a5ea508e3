"""`metropolis sweep run.toml --grid agents=25,100 --grid scheduler=lockstep,metropolis --grid seed=0,1,2`.

Mesa's `batch_run` for Metropolis: every combination of the grid's values, over the options of a config file
(`metropolis run --dump-config` writes one), each run in virtual time in its own process (virtual time is
deterministic, so the processes share nothing and the table does not depend on how many there were). The result
is one table, a row per run (its grid values, then its report and its cost), as `sweep.parquet` and `sweep.csv`,
and a plot of virtual time against the first grid key (`sweep.png`).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from metropolis.cli.config import RunConfig, checked, load
from metropolis.cli.console import table_console
from metropolis.cli.errors import one_line_errors
from metropolis.cli.run_setup import RunOptions, build_simulation, prices
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.runtime import Environment, VirtualRuntime

out = table_console()
NOT_SWEPT = ("out_dir", "force", "llm", "runtime", "replay")


def sweep(
    config: Path | None = typer.Argument(None, help="TOML file of run options (default: run's defaults)."),
    grid: list[str] = typer.Option([], "--grid", "-g", help="KEY=V1,V2,... over run options (repeatable)."),
    out_dir: Path = typer.Option(Path("sweeps/latest"), "--out", help="Folder for sweep.parquet, .csv and .png."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel processes (default: one per CPU core)."),
) -> None:
    """Run every combination of the grid in virtual time and write one table and a plot.

    Example: metropolis sweep run.toml --grid agents=25,100 --grid scheduler=lockstep,metropolis --grid seed=0,1,2"""
    _sweep(config, grid, out_dir, jobs)


def points(base: dict[str, Any], grid: list[str]) -> tuple[list[str], list[RunOptions]]:
    """The grid's keys and one checked `RunOptions` per combination, in grid order (the first key slowest)."""
    axes: dict[str, list[str]] = {}
    for item in grid:
        key, sep, listed = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not listed.strip():
            raise ValueError(f"--grid takes KEY=V1,V2,..., got {item!r}")
        if key not in RunConfig.model_fields or key in NOT_SWEPT:
            valid = [k for k in RunConfig.model_fields if k not in NOT_SWEPT]
            raise ValueError(f"--grid {key!r} is not an option a sweep can vary; choose from {', '.join(valid)}")
        if key in axes:
            raise ValueError(f"--grid {key} is given twice")
        axes[key] = [v.strip() for v in listed.split(",") if v.strip()]
    if base.get("llm") or base.get("runtime") == "asyncio" or base.get("replay"):
        raise ValueError("sweep runs in virtual time: the config must not set llm, runtime asyncio or replay")
    runs = []
    for combo in itertools.product(*axes.values()):
        point = {**base, **dict(zip(axes, combo, strict=True))}
        runs.append(RunOptions(**checked(point, "--grid ").model_dump()).resolved())
    return list(axes), runs


def run_point(opts: RunOptions) -> dict[str, Any]:
    """One run of the sweep, in virtual time, nothing written: its report (and cost) as a row."""
    sim, _, _ = build_simulation(opts)
    env = Environment()
    runtime = VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset(opts.preset, gpus=opts.gpus))))
    runtime.accounting.prices = prices(opts.price)
    report = runtime.run()
    row: dict[str, Any] = dataclasses.asdict(report)
    row["cost_usd"] = runtime.accounting.cost()
    return row


@one_line_errors
def _sweep(config: Path | None, grid: list[str], folder: Path, jobs: int) -> None:
    base = load(config) if config is not None else {}
    keys, runs = points(base, grid)
    if jobs < 0:
        raise ValueError(f"--jobs must be >= 0 (0: one per core), got {jobs}")
    workers = min(jobs or os.cpu_count() or 1, len(runs))
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any] | None] = [None] * len(runs)
    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"))
    with Progress(*columns, TimeRemainingColumn(), console=out) as bar:
        task = bar.add_task("sweep", total=len(runs))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_point, opts): i for i, opts in enumerate(runs)}
            for done in as_completed(futures):
                i = futures[done]
                rows[i] = {k: getattr(runs[i], k) for k in keys} | done.result()
                bar.advance(task)
    table = pd.DataFrame(rows)
    table.to_parquet(folder / "sweep.parquet", index=False)
    table.to_csv(folder / "sweep.csv", index=False)
    plot = _plot(table, keys, folder / "sweep.png")
    shown = table[[*keys, "agent_steps", "llm_calls", "duration", "mean_running_agents"]]
    out.print(shown.round(2).to_string(index=False))
    out.print(f"{len(runs)} runs in {workers} processes: {folder / 'sweep.parquet'}, sweep.csv" + plot)


def _plot(table: pd.DataFrame, keys: list[str], path: Path) -> str:
    """Virtual time against the first grid key, one line per value of the second, averaged over the rest."""
    if not keys:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, lines = keys[0], keys[1:2]
    fig, ax = plt.subplots(figsize=(6, 4))
    groups = table.groupby(lines) if lines else [((None,), table)]
    for name, group in groups:
        mean = group.groupby(x, sort=False)["duration"].mean()
        ax.plot(
            [str(v) for v in mean.index],
            mean.to_numpy(dtype=float),
            marker="o",
            label=None if not lines else str(name[0]),
        )
    ax.set_xlabel(x)
    ax.set_ylabel("virtual time (s)")
    if lines:
        ax.legend(title=lines[0])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ", sweep.png"
