"""`metropolis bench memory`: SGLang-like LRU, LRU with a host tier, invocation distance (ScaleSim), Belady and
an ideal GPU side by side, per workload class (independent, Smallville, diffusion) and kind of per-agent state
(KV prefix, LoRA adapter, a whole small model), with CSV and plots. Real engines are timed by `bench kv-restore`,
`bench slots` and `bench slots-sim`."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console, Group
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metropolis.bench.memory import (
    EVICTION_POLICIES,
    WORKLOADS,
    MemoryBenchConfig,
    MemoryBenchRow,
    compare,
    run_memory_bench,
)
from metropolis.bench.memory_openloop import OPEN_LOOP_EVICTION_POLICIES, OpenLoopRow, open_loop
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import names, positive_ints, writable_folder
from metropolis.llm.serving.presets import PRESETS
from metropolis.registry import check_name
from metropolis.report.bench import write_bench_report
from metropolis.report.tables import MEMORY
from metropolis.scheduling import scheduler_names

console = Console(width=240)


def memory(
    agents: str = typer.Option("25,100", "--agents", "-n", help="Agent counts, comma-separated (copies of the town)."),
    gpus: str = typer.Option("1", "--gpus", help="GPU counts, comma-separated (data-parallel replicas)."),
    start_hour: float = typer.Option(12.0, "--start-hour", help="Start of the window of the day (busy: 12)."),
    hours: float = typer.Option(0.25, "--hours", help="Length of the window in hours."),
    fraction: list[float] = typer.Option(
        [0.10, 0.25], "--fraction", help="GPU tiers (all replicas together) as a share of all state."
    ),
    lora_rank: int = typer.Option(16, "--lora-rank", help="Rank of the per-agent LoRA adapters (0: none)."),
    scheduler: list[str] = typer.Option(["lockstep", "metropolis"], "--scheduler", "-s"),
    demand_loads: str = typer.Option("blocking", "--demand-loads", help="blocking (SGLang) or overlap."),
    admission: str = typer.Option("fcfs", "--admission", help="fcfs, or lpm (cache-aware, SGLang's lpm)."),
    lora_load_ms: float = typer.Option(25.0, "--lora-load-ms", help="Fixed cost of one adapter load."),
    workload: str = typer.Option(
        "smallville", "--workload", help=f"Workload classes, comma-separated: {', '.join(WORKLOADS)}."
    ),
    state: str = typer.Option(
        "kv", "--state", help="Per-agent state kinds, comma-separated: kv (+ LoRA per --lora-rank), model, model+kv."
    ),
    agent_model: str = typer.Option("qwen2.5-0.5b", "--agent-model", help="The small model each agent owns."),
    model_host: float = typer.Option(
        0.5, "--model-host-fraction", help="Share of all agents' models host memory holds (the rest: disk)."
    ),
    spatial: bool = typer.Option(
        True, "--spatial/--no-spatial", help="Cap agents' planned distances by the spatial bound (a meeting)."
    ),
    preset_name: str = typer.Option("l4-llama3-8b", "--preset", help="Serving-model preset."),
    policies: str = typer.Option(
        ",".join(EVICTION_POLICIES), "--policies", help="Eviction policies to run, comma-separated."
    ),
    out: Path = typer.Option(Path("runs/bench-memory"), "--out", help="Folder for memory.csv and the plots."),
    tiny: bool = typer.Option(False, "--tiny", help="A few seconds' run, for tests."),
) -> None:
    """Agents' private serving state on a tight GPU: simulated time, hit rates and bytes moved per policy."""
    _memory(
        agents, gpus, start_hour, hours, fraction, lora_rank, scheduler, demand_loads, admission, lora_load_ms,
        workload, preset_name, out, tiny, spatial, policies, state, agent_model, model_host,
    )  # fmt: skip


@one_line_errors
def _memory(
    agents: str,
    gpus: str,
    start_hour: float,
    hours: float,
    fractions: list[float],
    lora_rank: int,
    schedulers: list[str],
    demand_loads: str,
    admission: str,
    lora_load_ms: float,
    workload: str,
    preset_name: str,
    out: Path,
    tiny: bool,
    spatial: bool,
    policies: str,
    states: str = "kv",
    agent_model: str = "qwen2.5-0.5b",
    model_host: float = 0.5,
) -> None:
    if lora_rank < 0:
        raise ValueError(f"--lora-rank must be >= 0, got {lora_rank}")
    writable_folder(out, "--out")  # now, not after the measurement
    for name in schedulers:
        check_name(name, scheduler_names(), "scheduler")
    check_name(preset_name, PRESETS, "serving preset")
    counts = positive_ints(agents, "--agents")
    cfg = MemoryBenchConfig(
        agents=(8,) if tiny else counts,
        gpus=positive_ints(gpus, "--gpus"),
        start_hour=start_hour,
        hours=5 / 60 if tiny else hours,
        fractions=tuple(fractions),
        lora_ranks=(None, lora_rank) if lora_rank else (None,),
        schedulers=tuple(schedulers),
        preset=preset_name,
        lora_load_s=lora_load_ms / 1e3,
        demand_loads=demand_loads,
        admission=admission,
        workloads=names(workload),
        states=names(states),
        agent_model=agent_model,
        model_host_fraction=model_host,
        spatial=spatial,
        policies=names(policies),
    )
    total = len(list(cfg.settings())) * len(cfg.policies)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("memory bench", total=total)

        started = [0]

        def progress(what: str) -> None:  # called as each run starts: the previous one is done
            bar.update(task, description=what, completed=started[0])
            started[0] += 1

        rows, sequences = run_memory_bench(cfg, progress=progress)
    console.print(_table(cfg, rows))
    if sequences:  # the open loop replays the lru runs
        console.print(_open_loop_table(open_loop(cfg, sequences)))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "memory.csv")
    plot(rows, out / "memory.png")
    table = [{**dataclasses.asdict(r), "bytes_moved": r.bytes_moved} for r in rows]
    write_bench_report(
        out / "report.html", "Metropolis bench memory", "Serving-memory policies on the same workload (virtual time)",
        [("Per setting and policy", table)], [("Simulated time and hit rate per setting", out / "memory.png")],
        note="One table per setting; memory.csv beside this page has every column.", view=MEMORY,
    )  # fmt: skip
    console.print(f"wrote {out / 'memory.csv'}, {out / 'memory.png'} and {out / 'report.html'}")


def _table(cfg: MemoryBenchConfig, rows: list[MemoryBenchRow]) -> Group:
    """One table per setting, within 100 columns: the setting and its verdicts (invocation distance against the
    baselines, the bound) in the title, a row per policy."""
    verdicts = {c.setting: c for c in compare(rows)}
    parts: list[Any] = [f"[bold]Agent memory, closed loop: {cfg.describe()}[/bold]"]
    for setting in dict.fromkeys(r.setting for r in rows):
        mine = [r for r in rows if r.setting == setting]
        v = verdicts[setting]
        title = MEMORY.title({**dataclasses.asdict(mine[0]), "llm_calls": mine[0].llm_calls})
        verdict = (
            f"ID / sglang {_x(v.speedup_over_sglang)} (id-nohost {_x(v.nohost_speedup_over_sglang)}), "
            f"ID / LRU {_x(v.speedup_over_lru)}, ID hits / Belady* {_pct(v.hit_share_of_belady)}\n"
            f"bound: sglang, LRU** {_x(v.bound_over_sglang)}, {_x(v.bound_over_lru)}"
        )
        parts.append(f"\n[bold]{title}[/bold]\n{verdict}")
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col in ("policy", "sim s", "hits", "prefetched", "late", "GB moved", "recompute tok", "est. err"):
            table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=col == "policy")
        for r in mine:
            error = "" if math.isnan(r.estimate_error) else f"{r.estimate_error:.1f} ({r.estimate_within_1:.0%})"
            table.add_row(
                r.policy, f"{r.sim_seconds:.1f}", f"{r.hit_rate:.1%}", f"{r.prefetch_hit_rate:.1%}",
                str(r.late_loads), f"{r.bytes_moved / 1e9:.1f}", f"{r.recompute_tokens:,}", error,
            )  # fmt: skip
        parts.append(table)
    parts.append(
        "* closed-loop Belady replays the ID run's accesses: not an upper bound (see the next table)\n"
        "** sglang (lru) / ideal: the most any eviction policy could gain over that baseline here\n"
        "   (a GPU that holds everything)\n"
        "late: hits whose prefetch was still arriving (the request waited)\n"
        "est. err: mean |predicted - actual| steps to the agent's next call (share within one step)"
    )
    return Group(*parts)


def _x(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.2f}x"


def _pct(share: float) -> str:
    return "-" if math.isnan(share) else f"{share:.1%}"


def _open_loop_table(rows: list[OpenLoopRow]) -> Table:
    """A row per setting (named in its first column), within 100 columns."""
    table = Table(
        title="Hit rates, open loop: each lru run's access sequence replayed (memory.tracesim, demand paging; "
        "ID with exact step distances), where Belady is the upper bound",
        title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    for col in ("setting", "accesses", *OPEN_LOOP_EVICTION_POLICIES, "ID / Belady"):
        table.add_column(col, justify="left" if col == "setting" else "right", no_wrap=col == "setting")
    for r in rows:
        agents, gpus, sched, fraction, rank, state, workload = r.setting
        gpu_words = f"{gpus} GPU{'s' if gpus > 1 else ''}"
        lora = f" LoRA {rank}" if rank else ""
        name = f"{workload} {agents} {gpu_words} {sched} {state} {fraction:.0%}{lora}"
        rates = [f"{r.hit_rates[p]:.1%}" for p in OPEN_LOOP_EVICTION_POLICIES]
        table.add_row(name, str(r.accesses), *rates, f"{r.id_share_of_belady:.1%}")
    return table


def write_csv(rows: list[MemoryBenchRow], path: Path) -> None:
    fields = [f.name for f in dataclasses.fields(MemoryBenchRow)] + ["bytes_moved"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for r in rows:
            writer.writerow([*dataclasses.astuple(r), r.bytes_moved])


def plot(rows: list[MemoryBenchRow], path: Path) -> None:
    """Simulated time and hit rate per setting, one bar per policy (each bar labelled under its group's name in
    the legend above both panels, so no policy's bar is covered)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r.setting for r in rows))
    labels = [
        f"{w} {n}\n{s}{f' {g} GPUs' if g > 1 else ''}\n{st} {f:.0%}{' LoRA' if rank else ''}"
        for n, g, s, f, rank, st, w in settings
    ]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(settings) + 2), 7.5), sharex=True)
    ran = [p for p in EVICTION_POLICIES if any(r.policy == p for r in rows)]
    width = 0.8 / len(ran)
    for k, policy in enumerate(ran):
        got = {r.setting: r for r in rows if r.policy == policy}
        xs = [i + k * width for i in range(len(settings))]
        axes[0].bar(xs, [got[s].sim_seconds for s in settings], width, label=policy, color=f"C{k}")
        axes[1].bar(xs, [got[s].hit_rate for s in settings], width, label=policy, color=f"C{k}")
    for ax, name in zip(axes, ("simulated seconds", "hit rate"), strict=True):
        ax.set_ylabel(name)
        ax.grid(True, axis="y", alpha=0.3)
    axes[1].set_xticks([i + 0.4 - width / 2 for i in range(len(settings))], labels, fontsize=7)
    axes[1].set_ylim(0, 1)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=min(len(ran), 4), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=120)
    plt.close(fig)
