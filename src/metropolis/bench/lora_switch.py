"""What one adapter switch costs on a real llama-server, measured on one slot with requests one at a time.

llama-server keeps every `--lora` adapter in memory from the start, so a switch moves no weights. The cases
(each the median of `repeats` requests of the same prompt length):

- `hit`: the slot's previous request had the same adapter and the same persona prefix: only the suffix is computed;
- `switch`: the previous request had another adapter: the server clears the slot's KV (the whole prompt is
  computed) and the context rebuilds its graph for the new adapter set;
- `recompute`: the same adapter but a new prefix each time: the whole prompt is computed, no switch;
- `no adapter`: as `recompute` with every scale at 0: the base model alone.
So `switch - recompute` is the switch's own cost (graph rebuild), `recompute - hit` what the lost prefix costs,
`recompute - no adapter` what the adapter's low-rank products cost; `POST /lora-adapters` (setting default
scales) is timed too.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from metropolis.bench.slots_sim import NO_PROMPT_CACHE
from metropolis.llm.calibration import random_words
from metropolis.llm.engines.llama_server import llama_server

CASES = ("hit", "switch", "recompute", "no adapter")


@dataclass(frozen=True, slots=True)
class SwitchCost:
    case: str
    ms: float  # median wall time of one request
    cpu_ms: float  # median server CPU time of one request (the figure on a shared machine)
    evaluated: float  # median prompt tokens the server computed


def _body(prefix: str, suffix: str, adapter: int | None, adapters: int) -> dict[str, object]:
    lora = [{"id": i, "scale": 1.0 if i == adapter else 0.0} for i in range(adapters)]
    return {"prompt": f"{prefix}\n{suffix}", "n_predict": 1, "cache_prompt": True, "temperature": 0.0,
            "id_slot": 0, "lora": lora}  # fmt: skip


Sample = tuple[float, float, int]  # wall ms, server CPU ms, prompt tokens computed


def switch_costs(
    url: str, adapters: int, cpu_seconds: Callable[[], float], prefix_words: int = 200, repeats: int = 5
) -> list[SwitchCost]:
    """The four cases on slot 0 of the server at `url` (which has at least 2 adapters loaded); `cpu_seconds`
    reads the server's CPU time so far."""
    if adapters < 2 or repeats < 1:
        raise ValueError("switch costs need 2+ adapters loaded and repeats >= 1")
    rng = random.Random(0)

    def _time(http: httpx.Client, body: dict[str, object]) -> Sample:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        r = http.post("/completion", json=body)
        ms, cpu_ms = (time.perf_counter() - t0) * 1000, (cpu_seconds() - cpu0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"llama-server /completion: HTTP {r.status_code}: {r.text[:200]}")
        return ms, cpu_ms, int(r.json()["timings"]["prompt_n"])

    def words(n: int) -> str:
        return random_words(rng, n)

    prefix = words(prefix_words)
    samples: dict[str, list[Sample]] = {case: [] for case in CASES}
    with httpx.Client(base_url=url, timeout=600) as http:
        _time(http, _body(prefix, words(8), 0, adapters))  # warm: slot 0 holds adapter 0 with `prefix`
        for _ in range(repeats):
            samples["hit"].append(_time(http, _body(prefix, words(8), 0, adapters)))
        for i in range(repeats):
            samples["switch"].append(_time(http, _body(prefix, words(8), (i + 1) % 2, adapters)))
        for _ in range(repeats):
            samples["recompute"].append(_time(http, _body(words(prefix_words), words(8), 1, adapters)))
        _time(http, _body(prefix, words(8), None, adapters))  # the switch to no adapter, not counted
        for _ in range(repeats):
            samples["no adapter"].append(_time(http, _body(words(prefix_words), words(8), None, adapters)))
    return [
        SwitchCost(case, *(statistics.median(column) for column in zip(*s, strict=True))) for case, s in samples.items()
    ]


def set_scales_ms(url: str, adapters: int, repeats: int = 5) -> float:
    """Median wall time of `POST /lora-adapters` (every default scale set), in ms."""
    times = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(repeats):
            body = [{"id": a, "scale": 1.0 if a == i % adapters else 0.0} for a in range(adapters)]
            t0 = time.perf_counter()
            http.post("/lora-adapters", json=body).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
        http.post("/lora-adapters", json=[{"id": a, "scale": 0.0} for a in range(adapters)]).raise_for_status()
    return statistics.median(times)


def run_switch_costs(
    binary: Path, paths: list[Path], prefix_words: int = 200, repeats: int = 5
) -> tuple[list[SwitchCost], float]:
    """`switch_costs` and `set_scales_ms` on a fresh one-slot server with `paths` loaded (no host prompt cache)."""
    extra = (*NO_PROMPT_CACHE, *(a for p in paths for a in ("--lora", str(p))), "--lora-init-without-apply")
    with tempfile.TemporaryDirectory() as saves, llama_server(binary, saves, slots=1, extra=extra) as server:
        set_ms = set_scales_ms(server.url, len(paths), repeats)
        return switch_costs(server.url, len(paths), server.cpu_seconds, prefix_words, repeats), set_ms
