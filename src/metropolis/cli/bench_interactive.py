"""`metropolis bench interactive`: a scripted person in the Smallville busy hour, latency first, throughput second
(virtual time, modelled L4s), against no priority and lockstep with the player; `--real`: a person among walkers
against the local llama-server on the wall clock, the priority the client's (llm/priority_gate.py)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from metropolis.bench.interactive import P95_GOAL, THROUGHPUT_GOAL, InteractiveSetting, bench_interactive
from metropolis.bench.interactive_real import RealSetting, bench_interactive_real
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import integer, number
from metropolis.llm.local_server import LocalModelServer
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
    talk_every: int | None = typer.Option(
        None, "--talk-every", help="The player speaks every this many steps (default 6; 2 with --real)."
    ),
    seed: int = typer.Option(0, "--seed", help="Workload seed."),
    real: bool = typer.Option(
        False, "--real", help="Against the local llama-server on the wall clock (uses --walkers, --minutes)."
    ),
    walkers: int = typer.Option(8, "--walkers", help="--real: background walkers (the Lin family first)."),
    minutes: float = typer.Option(3.0, "--minutes", help="--real: simulated minutes (6 steps a minute)."),
    cap: int = typer.Option(
        0, "--background-cap", help="--real: background requests let out while the person waits (gate)."
    ),
    slots: int = typer.Option(0, "--slots", help="--real: parallel slots of the server (0: sized to the machine)."),
) -> None:
    """A person walks through the busy hour talking to whoever is nearest: reply latency p50/p95 against an idle
    GPU, and background throughput against the town without them; baselines: no priority, lockstep. With
    --real: a person among walkers against the local llama-server, measured on the wall clock."""
    if real:
        _real(walkers, minutes, 2 if talk_every is None else talk_every, cap, slots, seed)
        return
    talk_every = 6 if talk_every is None else talk_every
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


def _real(walkers: int, minutes: float, talk_every: int, cap: int, slots: int, seed: int) -> None:
    integer(walkers, "--walkers", 1, 25)
    number(minutes, "--minutes", 0, 60, low_open=True)
    integer(talk_every, "--talk-every", 1, 10_000)
    integer(cap, "--background-cap", 0, 256)
    integer(slots, "--slots", 0, 256)
    err = Console(stderr=True)
    town = load_smallville()
    server = LocalModelServer(n_ctx=4096, slots=slots or None, cache_prompt=False, ignore_eos=True)
    with err.status("starting the local llama-server ..."), server:
        cfg = server.endpoint(read_timeout=600.0, max_attempts=2)
        err.print(f"llama-server at {cfg.base_url}: {server.slots} parallel slots, {server.config.threads()} thread(s)")
        result = bench_interactive_real(
            town, cfg, walkers=walkers, minutes=minutes, talk_every=talk_every, cap=cap, slots=server.slots,
            seed=seed, progress=lambda what: err.print(f"running {what} ..."),
        )  # fmt: skip
    console.print(real_table(result))


def real_table(setting: RealSetting) -> Table:
    t = Table(
        title=f"local llama-server, real time: {setting.walkers} walkers + a player in the Lins' house, "
        f"{setting.steps} steps, {setting.slots} slots, background cap {setting.cap}"
    )
    for col in ("mode", "wall s", "replies", "p50 s", "p95 s", "p95 / idle", "bg steps/s", "bg share", "held",
                "called back", "load 1 min"):  # fmt: skip
        t.add_column(col, justify="right")
    for mode, r in setting.rows.items():
        p50, p95 = r.percentile(50), r.percentile(95)
        ratio, share = setting.p95_ratio(mode), setting.throughput_share(mode)
        t.add_row(
            mode, f"{r.wall_seconds:.1f}", str(len(r.replies)), _s(p50), _s(p95),
            "-" if ratio is None else f"{ratio:.2f}x", "-" if mode == "idle" else f"{r.throughput:.2f}",
            "-" if share is None else f"{share:.1%}",
            str(r.held), str(r.called_back), f"{r.load[0]:.1f}-{r.load[1]:.1f}",
        )  # fmt: skip
    t.caption = (
        "idle: only the replies go to the server; held: background requests that waited at the gate; called "
        "back: background sends dropped for the person's (preempt); the latency goal: p95 <= 1.5x idle"
    )
    return t


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
