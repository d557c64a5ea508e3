"""`metropolis bench memory`: LRU, invocation distance (ScaleSim) and Belady side by side, with CSV and plots."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metropolis.bench.memory import POLICIES, MemoryBenchConfig, MemoryBenchRow, compare, run_memory_bench
from metropolis.cli.errors import one_line_errors

console = Console(width=180)


def memory(
    agents: int = typer.Option(100, "--agents", "-n", help="Agents in the town."),
    steps: int = typer.Option(180, "--steps", help="Steps to simulate (10 s each)."),
    fraction: list[float] = typer.Option([0.10, 0.25], "--fraction", help="GPU tier as a share of all state."),
    lora_rank: int = typer.Option(16, "--lora-rank", help="Rank of the per-agent LoRA adapters (0: none)."),
    scheduler: list[str] = typer.Option(["lockstep", "metropolis"], "--scheduler", "-s"),
    host_fraction: float = typer.Option(1.0, "--host", help="Host tier as a share of all state (0: none)."),
    preset_name: str = typer.Option("l4-llama3-8b", "--preset", help="Serving-model preset."),
    out: Path = typer.Option(Path("runs/bench-memory"), "--out", help="Folder for memory.csv and the plots."),
    tiny: bool = typer.Option(False, "--tiny", help="A few seconds' run, for tests."),
) -> None:
    """Agents' private serving state on a tight GPU: simulated time, hit rates and bytes moved per policy."""
    _memory(agents, steps, fraction, lora_rank, scheduler, host_fraction, preset_name, out, tiny)


@one_line_errors
def _memory(
    agents: int,
    steps: int,
    fractions: list[float],
    lora_rank: int,
    schedulers: list[str],
    host_fraction: float,
    preset_name: str,
    out: Path,
    tiny: bool,
) -> None:
    if lora_rank < 0:
        raise ValueError(f"--lora-rank must be >= 0, got {lora_rank}")
    cfg = MemoryBenchConfig(
        agents=8 if tiny else agents,
        steps=12 if tiny else steps,
        fractions=tuple(fractions),
        lora_ranks=(None, lora_rank) if lora_rank else (None,),
        schedulers=tuple(schedulers),
        preset=preset_name,
        host_fraction=host_fraction,
    )
    total = len(list(cfg.settings())) * len(POLICIES)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("memory bench", total=total)

        started = [0]

        def progress(what: str) -> None:  # called as each run starts: the previous one is done
            bar.update(task, description=what, completed=started[0])
            started[0] += 1

        rows = run_memory_bench(cfg, progress=progress)
    console.print(_table(cfg, rows))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "memory.csv")
    plot(rows, out / "memory.png")
    console.print(f"wrote {out / 'memory.csv'} and {out / 'memory.png'}")


def _table(cfg: MemoryBenchConfig, rows: list[MemoryBenchRow]) -> Table:
    verdicts = {c.setting: c for c in compare(rows)}
    table = Table(
        title=f"Agent memory: {cfg.agents} bursty agents, {cfg.steps} steps, {cfg.preset}, prefix "
        f"{cfg.prefix_tokens} tokens, host tier {cfg.host_fraction:.0%} of state"
    )
    for col in ("scheduler", "GPU", "LoRA", "policy", "sim s", "hit rate", "prefetched hits", "GB moved",
                "recompute tok", "ID speedup / LRU", "ID hits / Belady"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        v = verdicts[r.setting]
        mark = r.policy == "invocation-distance"
        table.add_row(
            r.scheduler, f"{r.fraction:.0%}", str(r.lora_rank or "-"), r.policy, f"{r.sim_seconds:.1f}",
            f"{r.hit_rate:.1%}", f"{r.prefetch_hit_rate:.1%}", f"{r.bytes_moved / 1e9:.1f}", f"{r.recompute_tokens:,}",
            f"{v.speedup_over_lru:.2f}x" if mark else "", f"{v.hit_share_of_belady:.1%}" if mark else "",
        )  # fmt: skip
    return table


def write_csv(rows: list[MemoryBenchRow], path: Path) -> None:
    fields = [f.name for f in dataclasses.fields(MemoryBenchRow)] + ["bytes_moved"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for r in rows:
            writer.writerow([*dataclasses.astuple(r), r.bytes_moved])


def plot(rows: list[MemoryBenchRow], path: Path) -> None:
    """Simulated time and hit rate per setting, one bar per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r.setting for r in rows))
    labels = [f"{s}\n{f:.0%}{' LoRA' if rank else ''}" for s, f, rank in settings]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(settings)), 4))
    width = 0.8 / len(POLICIES)
    for k, policy in enumerate(POLICIES):
        got = {r.setting: r for r in rows if r.policy == policy}
        xs = [i + k * width for i in range(len(settings))]
        axes[0].bar(xs, [got[s].sim_seconds for s in settings], width, label=policy)
        axes[1].bar(xs, [got[s].hit_rate for s in settings], width, label=policy)
    for ax, name in zip(axes, ("simulated seconds", "hit rate"), strict=True):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(settings))], labels, fontsize=7)
        ax.set_ylabel(name)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
