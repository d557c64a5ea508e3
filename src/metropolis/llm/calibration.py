"""Calibrating the serving model against a live server: measure, fit, and check on requests not fitted on.

The driver sends bursts of `c` identical-size requests to an idle server over the real client, for a grid of
prompt and output sizes. Two readings of the server are fitted and the bursts decide between them:
- one request at a time (llama-cpp-python's server): the four cost coefficients from single requests (c = 1);
- continuous batching (llama-server, vLLM, SGLang): the coefficients from singles and bursts together, so that
  `c_decode` (per sequence in the decode batch) and the prefill of c prompts in one iteration are measured, not
  assumed; at most `slots` requests run at once (llama-server's `--parallel`, read from its `/props`).
Held-out probes are then predicted by running them through the serving model itself, so the reported error is
the model's, not the fit formula's.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from metropolis.kernel import Environment
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.serving.calibrate import Measurement, fit, split
from metropolis.llm.serving.cluster import Cluster
from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.cost import CostModel
from metropolis.llm.serving.job import Job
from metropolis.llm.types import CHARS_PER_TOKEN, LLMBackend, LLMRequest

WORDS = (
    "town cafe morning market painter garden library river bakery music school letter window bridge harvest "
    "lantern council pharmacy festival neighbour supper poem chess kettle orchard sketch"
).split()


@dataclass(frozen=True, slots=True)
class Probe:
    prompt_tokens: int
    output_tokens: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    config: ServingConfig
    train: list[Measurement]
    test: list[Measurement]
    median_error_pct: float
    errors_pct: list[float]
    batching: str
    slots: int | None = None


def plan_probes(
    prompt_sizes: Sequence[int], output_sizes: Sequence[int], concurrencies: Sequence[int], repeats: int
) -> list[Probe]:
    if repeats < 1 or not prompt_sizes or not output_sizes or not concurrencies:
        raise ValueError("calibration needs at least one prompt size, output size, concurrency and repeat")
    if 1 not in concurrencies:
        raise ValueError("calibration needs single requests (concurrency 1) to fit the cost coefficients")
    return [
        Probe(p, o, c)
        for _ in range(repeats)
        for c in concurrencies
        for p in prompt_sizes
        for o in output_sizes
        if c == 1 or (p == prompt_sizes[len(prompt_sizes) // 2])  # bursts at one prompt size keep it short
    ]


def random_words(rng: random.Random, count: int) -> str:
    """`count` words drawn from a small town vocabulary: prompt text that no prefix cache has seen before."""
    return " ".join(rng.choice(WORDS) for _ in range(count))


def probe_prompt(tokens: int, rng: random.Random) -> str:
    """A prompt of about `tokens` tokens that starts with fresh words (no prefix cache can help) and asks for a
    long answer, so that the output runs to `max_tokens`."""
    words: list[str] = []
    chars = 0
    while chars < (tokens - 16) * CHARS_PER_TOKEN:
        word = rng.choice(WORDS)
        words.append(word)
        chars += len(word) + 1
    return " ".join(words) + "\nIgnore the words above. Count upwards from 1, one number per line, without stopping:"


async def measure(
    llm: LLMBackend, probes: Sequence[Probe], rng: random.Random, progress: Callable[[], None] | None = None
) -> list[Measurement]:
    """Send every probe as a burst, one burst at a time, and record the mean latency and token counts."""
    out = []
    for i, probe in enumerate(probes):
        requests = [
            LLMRequest(
                agent=f"calib{j}",
                step=i,
                function="calibrate",
                max_tokens=probe.output_tokens,
                messages=({"role": "user", "content": probe_prompt(probe.prompt_tokens, rng)},),
            )
            for j in range(probe.concurrency)
        ]
        replies = await asyncio.gather(*(llm.complete(r) for r in requests))
        out.append(
            Measurement(
                prompt_tokens=max(1, round(statistics.mean(r.prompt_tokens for r in replies))),
                output_tokens=max(1, round(statistics.mean(r.completion_tokens for r in replies))),
                concurrency=probe.concurrency,
                latency=statistics.mean(r.latency for r in replies),
            )
        )
        if progress is not None:
            progress()
    return out


async def measure_endpoint(
    cfg: EndpointConfig,
    probes: Sequence[Probe],
    rng: random.Random,
    progress: Callable[[], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """Warm the server up with one short request (not measured), then `measure` every probe against `cfg`."""
    async with OpenAIClient(cfg, on_retry=on_retry) as client:
        warmup = LLMRequest("calib", 0, "warmup", ({"role": "user", "content": "Hi"},), max_tokens=4)
        await client.complete(warmup)  # loads the model's pages
        return await measure(client, probes, rng, progress)


def simulate_burst(config: ServingConfig, m: Measurement) -> float:
    """Mean latency of `m`'s burst as the serving model predicts it."""
    env = Environment()
    cluster = Cluster(env, config.replace(replicas=1))
    jobs = [Job(f"a{j}", m.prompt_tokens, m.output_tokens) for j in range(m.concurrency)]
    for job in jobs:
        cluster.submit(job)
    env.run()
    return statistics.mean(job.latency for job in jobs)


def calibrate(
    records: Sequence[Measurement],
    rng: random.Random,
    test_fraction: float = 0.3,
    *,
    slots: int | None = None,
    batch_tokens: int = 1 << 20,
) -> CalibrationResult:
    """Fit on part of the records; the error is measured on the rest, through the serving model. `slots` bounds
    the requests a batching server runs at once (None: the widest burst); `batch_tokens` the tokens one
    iteration takes (llama-server's `--batch-size`)."""
    train, test = split(records, test_fraction, rng)
    singles = [m for m in train if m.concurrency == 1]
    widest = max((m.concurrency for m in records), default=1)
    candidates = {
        "one at a time": _config(fit(singles), 1, batch_tokens),
        "continuous batching": _config(fit(train), slots or max(2, widest), batch_tokens),
    }
    bursts = [m for m in train if m.concurrency > 1] or singles
    batching = min(candidates, key=lambda k: _median_error(candidates[k], bursts))
    config = candidates[batching]
    errors = [abs(simulate_burst(config, m) - m.latency) / m.latency * 100 for m in test]
    if not errors:
        raise ValueError("no held-out measurements: add probes or raise the test fraction")
    return CalibrationResult(config, list(train), list(test), statistics.median(errors), errors, batching, slots)


def server_slots(base_url: str, timeout: float = 5.0) -> int | None:
    """The parallel slots a llama.cpp server reports at `/props` (`total_slots`), or None if it reports none."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        reply = httpx.get(f"{root}/props", timeout=timeout)
        slots = reply.json().get("total_slots") if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return slots if isinstance(slots, int) and slots >= 1 else None


def config_from_json(data: dict[str, Any]) -> ServingConfig:
    """The serving model `metropolis calibrate --save` wrote (or the one `bench realtime --save` wrote beside its
    runs, under "serving")."""
    data = data.get("serving", data)
    cost = CostModel(**{k: float(data["cost"][k]) for k in ("c0", "c_prefill", "c_decode", "c_kv")})
    return _config(cost, int(data["max_running"]), int(data.get("max_batched_tokens", 1 << 20)))


def _config(cost: CostModel, max_running: int, batch_tokens: int = 1 << 20) -> ServingConfig:
    return ServingConfig(
        name="calibrated",
        cost=cost,
        kv_capacity_tokens=1 << 30,
        max_batched_tokens=batch_tokens,
        max_running=max_running,
        note="fitted by metropolis calibrate",
    )


def _median_error(config: ServingConfig, records: Sequence[Measurement]) -> float:
    return statistics.median(abs(simulate_burst(config, m) - m.latency) / m.latency for m in records)
