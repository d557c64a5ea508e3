"""`metropolis bench slots`: per-agent KV save/restore through the real `llama-server` slot API, against recompute.

llama.cpp's own server (not llama-cpp-python's) exposes `POST /slots/{id}?action=save|restore|erase` when started
with `--slot-save-path`. This starts one on loopback with the SmolLM2 GGUF, and times, per repetition: a call that
recomputes the agent's prefix and suffix, a save, an erase (the agent evicted), a restore followed by a call with
a new suffix (only the suffix is evaluated, which the server's own `prompt_n` confirms), and a call while the KV is
still resident. The binary is found by `--server PATH` or $METROPOLIS_LLAMA_SERVER.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from metropolis.llm.calibration import random_words
from metropolis.llm.engines.llama_server import llama_server
from metropolis.llm.engines.llama_server_slots import SlotClient


@dataclass(frozen=True, slots=True)
class SlotTimings:
    prefix_tokens: int
    recompute_ms: float  # prefix + suffix evaluated from scratch
    restore_ms: float  # the slot restore action alone (server's own timing)
    restored_call_ms: float  # a call right after the restore: only the new suffix is evaluated
    restored_prompt_n: int  # tokens the server evaluated for that call
    resident_call_ms: float  # the KV never left the slot
    save_ms: float
    repeats: int


def measure_slots(binary: Path, model: Path | None = None, prefix_words: int = 450, repeats: int = 5) -> SlotTimings:
    """Median timings over `repeats`; one server thread, one slot, on a free loopback port."""
    rng = random.Random(0)
    prefix = random_words(rng, prefix_words)
    with (
        tempfile.TemporaryDirectory() as saves,
        llama_server(binary, saves, model=model) as server,
        httpx.Client(base_url=server.url, timeout=300) as http,
    ):
        return _measure(http, prefix, rng, repeats)


def _call(http: httpx.Client, prompt: str) -> tuple[float, int, int]:
    """(wall ms, tokens evaluated, prompt tokens) of a one-token completion pinned to slot 0."""
    t0 = time.perf_counter()
    r = http.post("/completion", json={"prompt": prompt, "n_predict": 1, "cache_prompt": True, "id_slot": 0})
    r.raise_for_status()
    body = r.json()
    timings = body.get("timings", {})
    return (time.perf_counter() - t0) * 1000, int(timings.get("prompt_n", -1)), int(body.get("tokens_evaluated", 0))


def _measure(http: httpx.Client, prefix: str, rng: random.Random, repeats: int) -> SlotTimings:
    slots = SlotClient(http)
    suffix = lambda: " " + random_words(rng, 30)  # noqa: E731 - a fresh ~40-token tail
    _call(http, prefix + suffix())  # warm-up
    rec, res, rcall, rn, hit, save = [], [], [], [], [], []
    tokens = 0
    for _ in range(repeats):
        slots.erase(0)
        ms, _, tokens = _call(http, prefix + suffix())
        rec.append(ms)
        save.append(slots.save(0, "agent.bin").ms or 0.0)
        slots.erase(0)
        res.append(slots.restore(0, "agent.bin").ms or 0.0)
        ms, n, _ = _call(http, prefix + suffix())
        rcall.append(ms)
        rn.append(n)
        hit.append(_call(http, prefix + suffix())[0])
    med = statistics.median
    return SlotTimings(tokens, med(rec), med(res), med(rcall), int(med(rn)), med(hit), med(save), repeats)
