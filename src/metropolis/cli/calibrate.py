"""`metropolis calibrate`: fit the serving model to a live server and report its prediction error."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from metropolis.cli.errors import one_line_errors
from metropolis.cli.llm_source import check_llm_spec, llm_endpoint
from metropolis.cli.options import integer, number, positive_ints, writable_file
from metropolis.llm.calibration import CalibrationResult, Probe, calibrate, measure_endpoint, plan_probes, server_slots
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.serving.calibrate import Measurement

console = Console(stderr=True)
out = Console()


def calibrate_cmd(
    llm: str = typer.Option("local", "--llm", "--endpoint", help="'local' (SmolLM2 on llama.cpp) or a server URL."),
    kind: str = typer.Option("vllm", "--kind", help="Server dialect for a URL: vllm, sglang, llama.cpp, ollama..."),
    model: str = typer.Option("default", "--model", help="Model name to request from a URL endpoint."),
    prompts: str = typer.Option("64,192,384,640", "--prompt-tokens", help="Prompt sizes to probe."),
    outputs: str = typer.Option("4,16,48", "--output-tokens", help="Output sizes to probe."),
    concurrency: str = typer.Option("1,2,4,8", "--concurrency", help="Burst sizes (1 is required)."),
    repeats: int = typer.Option(2, "--repeats", help="How many times to probe each size."),
    seed: int = typer.Option(0, "--seed"),
    save: Path | None = typer.Option(None, "--save", help="Write the fitted serving model and measurements (JSON)."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for one answer before a retry."),
) -> None:
    """Measure a server's latency against prompt tokens, output tokens and concurrency, fit the serving model's
    cost terms, batching included, from single requests and bursts, and print its median prediction error on
    requests it was not fitted on. `--save` writes it for `metropolis bench realtime --serving`.

    Exit codes: 0 done, 2 bad input, 3 the server failed, 130 interrupted."""
    _calibrate(llm, kind, model, prompts, outputs, concurrency, repeats, seed, save, timeout)


@one_line_errors
def _calibrate(
    llm: str,
    kind: str,
    model: str,
    prompts: str,
    outputs: str,
    conc: str,
    repeats: int,
    seed: int,
    save: Path | None,
    timeout: float,
) -> None:
    check_llm_spec(llm, kind)  # before a server starts: --kind bogus is refused even with --llm local
    integer(repeats, "--repeats", 1, 1000)
    number(timeout, "--timeout", 0, 86_400, low_open=True)
    if save is not None:
        writable_file(save, "--save")  # now, not after the measurement
    probes = plan_probes(
        list(positive_ints(prompts, "--prompt-tokens", most=100_000)),
        list(positive_ints(outputs, "--output-tokens", most=100_000)),
        list(positive_ints(conc, "--concurrency", most=4096)),
        repeats,
    )
    rng = random.Random(seed)
    rng.shuffle(probes)
    with (
        console.status(f"starting {llm} ..."),
        llm_endpoint(llm, kind, model, max_attempts=3, read_timeout=timeout) as cfg,
    ):
        console.print(f"calibrating against {cfg.base_url} ({cfg.model}): {len(probes)} probes")
        with Progress(
            TextColumn("measuring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
            transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("probes", total=len(probes))
            records = asyncio.run(_measure(cfg, probes, rng, lambda: bar.advance(task)))
        slots = server_slots(cfg.base_url)  # llama-server's parallel slots; None for servers that do not say
    result = calibrate(records, random.Random(seed), slots=slots)
    _report(result)
    if save is not None:
        save.write_text(json.dumps(_as_json(result), indent=2))
        out.print(f"saved to {save}")


async def _measure(
    cfg: EndpointConfig, probes: list[Probe], rng: random.Random, tick: Callable[[], None]
) -> list[Measurement]:
    return await measure_endpoint(cfg, probes, rng, tick, lambda what: console.print(f"[yellow]retry[/yellow]: {what}"))


def _report(r: CalibrationResult) -> None:
    c = r.config.cost
    out.print("[bold]fitted serving model[/bold] (per engine iteration)")
    out.print(f"  c0        {c.c0 * 1e3:9.3f} ms")
    out.print(f"  c_prefill {c.c_prefill * 1e6:9.3f} us per prompt token")
    out.print(f"  c_decode  {c.c_decode * 1e6:9.3f} us per sequence in the decode batch")
    out.print(f"  c_kv      {c.c_kv * 1e9:9.3f} ns per KV token attended")
    slots = f", {r.slots} slots" if r.slots else ""
    out.print(f"  batching  {r.batching} (at most {r.config.max_running} at once{slots})")
    out.print(f"fitted on {len(r.train)} bursts, tested on {len(r.test)} others")
    out.print(f"[bold]median prediction error on held-out requests: {r.median_error_pct:.1f}%[/bold]")


def _as_json(r: CalibrationResult) -> dict[str, object]:
    c = r.config.cost
    return {
        "cost": {"c0": c.c0, "c_prefill": c.c_prefill, "c_decode": c.c_decode, "c_kv": c.c_kv},
        "max_running": r.config.max_running,
        "max_batched_tokens": r.config.max_batched_tokens,
        "slots": r.slots,
        "batching": r.batching,
        "median_error_pct": r.median_error_pct,
        "measurements": [_fields(m) for m in r.train + r.test],
    }


def _fields(m: Measurement) -> dict[str, object]:
    return {k: getattr(m, k) for k in ("prompt_tokens", "output_tokens", "concurrency", "latency", "ttft")}
