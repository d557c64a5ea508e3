"""The memory stream: everything an agent observed, planned, said and concluded, with retrieval.

Retrieval ranks memories by recency (exponential decay in simulated minutes since last access), importance
(1-10) and relevance (cosine similarity of sentence embeddings), each normalised to [0, 1] over the candidates and
weighted, as in Generative Agents. Timestamps are simulated seconds, so the stream is the same under every
scheduler; ties break by memory id.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from metropolis.agents.genagent.embeddings import Embedder
from metropolis.registry import check_name

KINDS = ("observation", "plan", "chat", "reflection")


@dataclass(slots=True)
class MemoryNode:
    id: int
    kind: str
    text: str
    created: float
    last_access: float
    importance: int


@dataclass(frozen=True, slots=True)
class RetrievalWeights:
    recency: float = 1.0
    importance: float = 1.0
    relevance: float = 1.0
    decay_per_minute: float = 0.995


def _normalise(values: np.ndarray) -> np.ndarray:
    span = float(values.max() - values.min()) if values.size else 0.0
    if span == 0.0:
        return np.full_like(values, 0.5)
    return (values - values.min()) / span


class MemoryStream:
    """Append-only list of memories with an importance counter that triggers reflection."""

    def __init__(self, embedder: Embedder, weights: RetrievalWeights | None = None) -> None:
        self.embedder = embedder
        self.weights = weights or RetrievalWeights()
        self.nodes: list[MemoryNode] = []
        self.importance_since_reflection = 0

    def add(self, kind: str, text: str, now: float, importance: int) -> MemoryNode:
        check_name(kind, KINDS, "memory kind")
        if not 1 <= importance <= 10:
            raise ValueError(f"memory importance must be within [1, 10], got {importance} for {text!r}")
        node = MemoryNode(len(self.nodes), kind, text, now, now, importance)
        self.nodes.append(node)
        if kind != "reflection":
            self.importance_since_reflection += importance
        return node

    def recent(self, n: int, kinds: tuple[str, ...] = KINDS) -> list[MemoryNode]:
        return [m for m in self.nodes if m.kind in kinds][-n:] if n > 0 else []

    def scores(self, query: str, now: float, nodes: list[MemoryNode]) -> np.ndarray:
        """The weighted retrieval score of each of `nodes` for `query` at simulated time `now`."""
        w = self.weights
        minutes = np.array([max(0.0, now - m.last_access) / 60.0 for m in nodes], dtype=np.float64)
        recency = np.power(w.decay_per_minute, minutes)
        importance = np.array([m.importance for m in nodes], dtype=np.float64)
        vectors = self.embedder.embed([query, *(m.text for m in nodes)]).astype(np.float64)
        relevance = vectors[1:] @ vectors[0]
        return (
            w.recency * _normalise(recency)
            + w.importance * _normalise(importance)
            + w.relevance * _normalise(relevance)
        )

    def retrieve(self, query: str, now: float, k: int) -> list[MemoryNode]:
        """The `k` best memories for `query`, best first; marks them accessed at `now`."""
        if not self.nodes or k <= 0:
            return []
        scores = self.scores(query, now, self.nodes)
        order = sorted(range(len(self.nodes)), key=lambda i: (-round(float(scores[i]), 9), i))[:k]
        found = [self.nodes[i] for i in order]
        for node in found:
            node.last_access = now
        return found

    def snapshot(self) -> tuple[tuple[str, str, float, int], ...]:
        return tuple((m.kind, m.text, m.created, m.importance) for m in self.nodes)

    def state_dict(self) -> dict[str, Any]:
        """The memories and the reflection counter (the embedder and the weights are fixed)."""
        return {"nodes": copy.deepcopy(self.nodes), "importance_since_reflection": self.importance_since_reflection}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nodes = copy.deepcopy(state["nodes"])
        self.importance_since_reflection = state["importance_since_reflection"]

    def __len__(self) -> int:
        return len(self.nodes)
