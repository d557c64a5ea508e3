"""`metropolis bench lora`: one LoRA adapter per agent on a real llama-server; which adapters stay resident (held by
a slot with the agent's prompt computed under it) chosen by the server, LRU, invocation distance or Belady, as
one table; then what one adapter switch costs."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.table import Table

from metropolis.bench.lora import WAYS, LoraBenchConfig, LoraWayResult, adapter_bytes, run_lora_bench
from metropolis.bench.lora_switch import SwitchCost, run_switch_costs
from metropolis.cli.bench_slots import SERVER_HELP
from metropolis.cli.errors import one_line_errors
from metropolis.llm.engines.llama_server import find_server
from metropolis.llm.local_server import smollm2_path
from metropolis.llm.lora import AdapterSpec, adapter_paths

console = Console(width=160)


@one_line_errors
def lora(
    server: str | None = typer.Option(None, "--server", help=SERVER_HELP),
    agents: int = typer.Option(8, "--agents", help="Agents, one adapter each."),
    slots: int = typer.Option(3, "--slots", help="Adapters resident at once (the server's slots)."),
    minutes: float = typer.Option(4.0, "--minutes", help="Minutes of the replayed Smallville window (from 12:00)."),
    switch: bool = typer.Option(True, "--switch/--no-switch", help="Also time one adapter switch on one slot."),
    tiny: bool = typer.Option(False, "--tiny", help="A short run, for tests (3 agents, 1 minute, 2 ways)."),
) -> None:
    """Per-agent LoRA adapters on a real llama-server: resident by server choice, LRU, invocation distance, Belady."""
    ways: tuple[str, ...]
    if tiny:
        cfg, ways = LoraBenchConfig(agents=3, minutes=1, slots=2, prefix_words=60), ("server", "lru")
    else:
        cfg, ways = LoraBenchConfig(agents=agents, minutes=minutes, slots=slots), WAYS
    binary = find_server(server)
    err = Console(stderr=True)
    results = run_lora_bench(binary, cfg, ways=ways, progress=lambda way: err.print(f"running {way} ..."))
    paths = adapter_paths(smollm2_path(), cfg.agents, AdapterSpec(rank=cfg.rank, alpha=cfg.rank))
    console.print(table(cfg, results, adapter_bytes(paths)))
    if switch and not tiny:
        err.print("timing one adapter switch ...")
        costs, set_ms = run_switch_costs(binary, paths, cfg.prefix_words)
        console.print(switch_table(costs, set_ms, len(paths)))


def table(cfg: LoraBenchConfig, results: list[LoraWayResult], total_bytes: int) -> Table:
    t = Table(
        title=f"Smallville {cfg.start_hour:g}h+{cfg.minutes:g}min, {cfg.agents} agents with a rank-{cfg.rank} "
        f"LoRA each ({total_bytes / cfg.agents / 1e6:.2f} MB), {cfg.scheduler}, llama-server SmolLM2-135M, "
        f"{cfg.slots} slots = adapters resident, {cfg.requests_in_flight()} in flight, 1 thread, "
        f"prefix ~{cfg.prefix_words} words per agent"
    )
    for col in ("way", "wall s", "server CPU s", "calls", "policy hits", "prefix reused", "tokens evaluated",
                "of prompt tokens", "ms/call reused", "ms/call switched"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            r.way, f"{r.wall_s:.1f}", f"{r.server_cpu_s:.1f}", str(r.calls),
            "-" if r.policy_hits < 0 else f"{r.policy_hits} ({r.policy_hits / max(r.calls, 1):.0%})",
            f"{r.reused} ({r.reused / max(r.calls, 1):.0%})", f"{r.evaluated:,}",
            f"{r.evaluated / max(r.prompt_tokens, 1):.1%}", _ms(r.median_ms(True)), _ms(r.median_ms(False)),
        )  # fmt: skip
    by = {r.way: r for r in results}
    lines = []
    if "invocation-distance" in by:
        ours = by["invocation-distance"]
        lines += [
            f"{base} / invocation-distance: server CPU {by[base].server_cpu_s / max(ours.server_cpu_s, 1e-9):.2f}x, "
            f"tokens evaluated {by[base].evaluated / max(ours.evaluated, 1):.2f}x, "
            f"wall {by[base].wall_s / ours.wall_s:.2f}x (above 1: invocation distance did better)"
            for base in ("server", "lru", "belady") if base in by
        ]  # fmt: skip
    lines.append(
        f"histories identical in all ways; ms/call: median wall per call, waiting for a slot included; "
        f"{os.cpu_count()} CPUs, shared: server CPU time is the figure"
    )
    t.caption = "\n".join(lines)
    return t


def switch_table(costs: list[SwitchCost], set_ms: float, adapters: int) -> Table:
    t = Table(title=f"One request on one slot, {adapters} adapters loaded (medians)")
    for col in ("case", "wall ms", "server CPU ms", "tokens evaluated"):
        t.add_column(col, justify="right")
    for c in costs:
        t.add_row(c.case, f"{c.ms:.0f}", f"{c.cpu_ms:.0f}", f"{c.evaluated:.0f}")
    by = {c.case: c.cpu_ms for c in costs}
    t.caption = (
        f"server CPU: the switch itself (switch - recompute) {by['switch'] - by['recompute']:+.0f} ms, the lost "
        f"prefix (recompute - hit) {by['recompute'] - by['hit']:+.0f} ms, the adapter's products (recompute - no "
        f"adapter) {by['recompute'] - by['no adapter']:+.0f} ms; POST /lora-adapters {set_ms:.1f} ms wall; "
        "adapters never move: llama-server keeps every --lora in memory"
    )
    return t


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
