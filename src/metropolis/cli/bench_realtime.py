"""`metropolis bench realtime`: the policies run for real against the local batching server, with the serving
model's prediction of each run beside it (`metropolis.bench.realtime`)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from metropolis.bench.realtime import (
    TOLERANCE_PCT,
    PolicyRun,
    WorkloadSpec,
    run_workload,
    same_ranking,
    simulation_factory,
    speedup,
)
from metropolis.cli.console import table_console
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import MAX_AGENTS, integer, number, writable_file
from metropolis.llm.calibration import calibrate, config_from_json, measure_endpoint, plan_probes
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.local_server import LocalModelServer
from metropolis.llm.serving import ServingConfig
from metropolis.registry import check_name
from metropolis.scheduling import scheduler_names
from metropolis.world.smallville import load_smallville

console = Console(stderr=True)
out = table_console()
# A short probe grid for the in-run calibration: prompt sizes of walkers and of replayed calls, bursts up to 16.
PROMPTS, OUTPUTS, BURSTS = (32, 256, 640, 1200), (4, 22, 48), (1, 2, 4, 8, 16)


def realtime(
    walkers: int = typer.Option(25, "--walkers", help="Walker agents (0: no walker workload)."),
    replay_agents: int = typer.Option(10, "--replay-agents", help="Replayed generative agents (0: none)."),
    minutes: float = typer.Option(3.0, "--minutes", help="Simulated minutes of each workload."),
    start_hour: float = typer.Option(12.0, "--start-hour", help="Time of day the replayed window starts."),
    policy: list[str] = typer.Option([], "--scheduler", "-s", help="Policies (repeat; default: all)."),
    serving: Path | None = typer.Option(
        None, "--serving", help="A serving model saved by `metropolis calibrate --save` (default: fit one here)."
    ),
    slots: int = typer.Option(0, "--slots", help="Parallel slots of the server (0: sized to the machine)."),
    save: Path | None = typer.Option(None, "--save", help="Write every run and the fitted model as JSON."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Walkers and replayed generative-agent calls under every policy against the local llama-server (continuous
    batching), wall-clock speedups side by side, each next to the serving model's virtual-time prediction.

    Exit codes: 0 done, 2 bad input, 3 the server failed, 130 interrupted."""
    _realtime(walkers, replay_agents, minutes, start_hour, policy, serving, slots, save, seed)


@one_line_errors
def _realtime(
    walkers: int,
    replay_agents: int,
    minutes: float,
    start_hour: float,
    policies: list[str],
    serving_file: Path | None,
    slots: int,
    save: Path | None,
    seed: int,
) -> None:
    integer(walkers, "--walkers", 0, MAX_AGENTS)
    integer(replay_agents, "--replay-agents", 0, MAX_AGENTS)
    integer(slots, "--slots", 0, 256)
    number(minutes, "--minutes", 0, 24 * 60, low_open=True)
    for name in policies:
        check_name(name, scheduler_names(), "scheduler")
    if save is not None:
        writable_file(save, "--save")
    fitted = config_from_json(json.loads(serving_file.read_text())) if serving_file is not None else None
    specs = [WorkloadSpec("walkers", walkers, minutes / 60, start_hour, seed)] if walkers else []
    specs += [WorkloadSpec("replay", replay_agents, minutes / 60, start_hour, seed)] if replay_agents else []
    if not specs:
        raise ValueError("nothing to run: --walkers and --replay-agents are both 0")
    town = load_smallville(agents=max(walkers, replay_agents))
    policies = policies or scheduler_names()
    server = LocalModelServer(n_ctx=4096, slots=slots or None, cache_prompt=False, ignore_eos=True)
    with console.status("starting the local llama-server ..."), server:
        cfg = server.endpoint(read_timeout=600.0, max_attempts=2)
        console.print(
            f"llama-server at {cfg.base_url}: {server.slots} parallel slots, {server.config.threads()} thread(s)"
        )
        if fitted is None:
            fitted = _fit(cfg, server.slots, seed)
        runs: list[PolicyRun] = []
        for spec in specs:
            make = simulation_factory(town, spec)
            with console.status("") as status:
                runs += run_workload(make, spec.label, policies, cfg, fitted, lambda m: status.update(m))
    _print(runs, fitted)
    if save is not None:
        save.write_text(json.dumps({"serving": _serving(fitted), "runs": [_row(r) for r in runs]}, indent=2))
        out.print(f"saved to {save}")


def _fit(cfg: EndpointConfig, slots: int, seed: int) -> ServingConfig:
    probes = plan_probes(PROMPTS, OUTPUTS, BURSTS, 1)
    rng = random.Random(seed)
    rng.shuffle(probes)
    with console.status(f"calibrating: {len(probes)} bursts"):
        records = asyncio.run(measure_endpoint(cfg, probes, rng))
    result = calibrate(records, random.Random(seed), slots=slots, batch_tokens=2048)
    c = result.config.cost
    console.print(
        f"fitted: c0 {c.c0 * 1e3:.2f} ms, c_prefill {c.c_prefill * 1e6:.1f} us/token, c_decode "
        f"{c.c_decode * 1e3:.2f} ms/sequence, c_kv {c.c_kv * 1e9:.1f} ns/token; {result.batching}; held-out "
        f"median error {result.median_error_pct:.1f}%"
    )
    return result.config


def _print(runs: list[PolicyRun], serving: ServingConfig) -> None:
    for workload in dict.fromkeys(r.workload for r in runs):
        rows = [r for r in runs if r.workload == workload]
        names = {r.policy for r in rows}
        table = Table(title=f"{workload}: real wall clock on the local llama-server vs virtual-time prediction")
        for col in ("policy", "calls", "measured s", "predicted s", "error", "in flight (pred.)"):
            table.add_column(col, justify="right")
        bases = [b for b in ("serial", "lockstep") if b in names]
        for base in bases:
            table.add_column(f"x {base} (pred.)", justify="right")
        for r in rows:
            cells = [
                r.policy, f"{r.calls}", f"{r.measured:.1f}", f"{r.predicted:.1f}", f"{r.error_pct:+.1f}%",
                f"{r.mean_in_flight:.1f} ({r.predicted_in_flight:.1f})",
            ]  # fmt: skip
            cells += [
                f"{speedup(rows, r.policy, b):.2f} ({speedup(rows, r.policy, b, predicted=True):.2f})" for b in bases
            ]
            table.add_row(*cells)
        out.print(table)
        worst = max(abs(r.error_pct) for r in rows)
        verdict = "within" if worst <= TOLERANCE_PCT else "NOT within"
        ranking = "the same" if same_ranking(rows) else "a DIFFERENT"
        out.print(f"  worst prediction error {worst:.1f}%: {verdict} {TOLERANCE_PCT:g}%; {ranking} ranking of policies")
    out.print(f"  serving model: {_serving(serving)}")


def _serving(config: ServingConfig) -> dict[str, object]:
    return {
        "cost": config.cost.as_dict(),
        "max_running": config.max_running,
        "max_batched_tokens": config.max_batched_tokens,
    }


def _row(r: PolicyRun) -> dict[str, object]:
    return {
        "workload": r.workload, "policy": r.policy, "measured_s": r.measured, "predicted_s": r.predicted,
        "error_pct": r.error_pct, "calls": r.calls, "mean_in_flight": r.mean_in_flight,
        "predicted_in_flight": r.predicted_in_flight, "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
    }  # fmt: skip
