"""`metropolis bench interactive`: a scripted person in the Smallville busy hour, latency first, throughput second
(virtual time, modelled L4s), against no priority and lockstep with the player."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from metropolis.bench.interactive import P95_GOAL, THROUGHPUT_GOAL, InteractiveSetting, bench_interactive
from metropolis.cli.errors import one_line_errors
from metropolis.world.smallville import load_smallville

console = Console(width=160)


def _settings(agents: str, gpus: str) -> tuple[tuple[int, int], ...]:
    counts = [int(a) for a in agents.split(",") if a.strip()]
    cards = [int(g) for g in gpus.split(",") if g.strip()]
    if len(counts) != len(cards) or not counts:
        raise ValueError(f"--agents {agents} and --gpus {gpus} must list as many settings (e.g. 25,500 and 1,8)")
    if min(counts) < 1 or min(cards) < 1:
        raise ValueError("--agents and --gpus take counts >= 1")
    return tuple(zip(counts, cards, strict=True))


@one_line_errors
def interactive(
    agents: str = typer.Option("25,500", "--agents", help="Background agents per setting, comma-separated."),
    gpus: str = typer.Option("1,8", "--gpus", help="Modelled L4s per setting, comma-separated."),
    hours: float = typer.Option(0.25, "--hours", help="Simulated hours of the busy hour (from 12:00)."),
    talk_every: int = typer.Option(6, "--talk-every", help="The player speaks every this many steps."),
    seed: int = typer.Option(0, "--seed", help="Workload seed."),
) -> None:
    """A person walks through the busy hour talking to whoever is nearest: reply latency p50/p95 against an idle
    GPU, and background throughput against the town without them; baselines: no priority, lockstep."""
    if not 0 < hours <= 1:
        raise ValueError(f"--hours must be within (0, 1], got {hours:g}")
    err = Console(stderr=True)
    results = bench_interactive(
        load_smallville(), _settings(agents, gpus), hours=hours, talk_every=talk_every, seed=seed,
        progress=lambda what: err.print(f"running {what} ..."),
    )  # fmt: skip
    for setting in results:
        console.print(table(setting, hours))


def table(setting: InteractiveSetting, hours: float) -> Table:
    t = Table(title=f"busy hour 12:00 + {hours * 60:g} min, {setting.agents} agents + a player, {setting.gpus} L4")
    for col in ("mode", "virtual s", "replies", "p50 s", "p95 s", "p95 / idle", "bg calls/s", "bg share",
                "preemptions", "wall s"):  # fmt: skip
        t.add_column(col, justify="right")
    for mode, r in setting.rows.items():
        p50, p95, ratio = r.percentile(50), r.percentile(95), r.p95_ratio()
        t.add_row(
            mode, f"{r.virtual_seconds:.1f}", str(len(r.replies)), "-" if p50 is None else f"{p50:.2f}",
            "-" if p95 is None else f"{p95:.2f}", "-" if ratio is None else f"{ratio:.2f}x",
            f"{r.throughput:.3f}", f"{setting.throughput_share(mode):.1%}", str(r.preemptions),
            f"{r.wall_seconds:.1f}",
        )  # fmt: skip
    ours = setting.rows["player"]
    ratio = ours.p95_ratio()
    share = setting.throughput_share("player")
    lines = [
        f"idle GPU: the same reply takes {ours.idle_latency:.2f} s; goals: p95 <= {P95_GOAL:g}x idle "
        f"({'met' if ratio is not None and ratio <= P95_GOAL else 'missed'}), background >= {THROUGHPUT_GOAL:.0%} "
        f"of the town alone ({'met' if share >= THROUGHPUT_GOAL else 'missed'})",
    ]
    for base in ("no priority", "lockstep"):
        b = setting.rows[base]
        b95, o95 = b.percentile(95), ours.percentile(95)
        if b95 is not None and o95 is not None:
            lines.append(
                f"player over {base}: p95 {b95 / o95:.2f}x lower, background throughput "
                f"{ours.throughput / b.throughput:.2f}x"
            )
    t.caption = "\n".join(lines)
    return t
