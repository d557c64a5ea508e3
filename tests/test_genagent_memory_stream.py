"""Memory stream retrieval: recency, importance and relevance, with either embedding backend."""

from __future__ import annotations

import numpy as np
import pytest

from metropolis.agents.genagent.embeddings import CachedEmbedder, HashEmbedder, make_embedder, minilm_available
from metropolis.agents.genagent.memory_stream import MemoryStream, RetrievalWeights


def stream(recency: float, importance: float, relevance: float) -> MemoryStream:
    return MemoryStream(CachedEmbedder(HashEmbedder()), RetrievalWeights(recency, importance, relevance, 0.99))


def test_recency_prefers_newest_and_access_refreshes() -> None:
    mem = stream(1, 0, 0)
    for i, text in enumerate(["ate bread", "read a book", "fed the cat"]):
        mem.add("observation", text, i * 600.0, 3)
    assert [m.text for m in mem.retrieve("anything", 3600.0, 2)] == ["fed the cat", "read a book"]
    mem.retrieve("x", 3600.0, 0)
    mem.nodes[0].last_access = 3600.0
    assert mem.retrieve("anything", 3600.0, 1)[0].text == "ate bread"


def test_importance_ranks_and_ties_break_by_age() -> None:
    mem = stream(0, 1, 0)
    mem.add("observation", "saw a bird", 0.0, 2)
    mem.add("chat", "got engaged", 0.0, 9)
    mem.add("plan", "buy milk", 0.0, 2)
    assert [m.text for m in mem.retrieve("q", 60.0, 3)] == ["got engaged", "saw a bird", "buy milk"]


def test_relevance_finds_the_matching_memory_with_hash_embeddings() -> None:
    mem = stream(0, 0, 1)
    for text in ["Klaus is writing a research paper", "Isabella is making coffee at Hobbs Cafe", "the park is green"]:
        mem.add("observation", text, 0.0, 3)
    assert mem.retrieve("coffee at the cafe", 0.0, 1)[0].text == "Isabella is making coffee at Hobbs Cafe"
    assert mem.retrieve("research paper", 0.0, 1)[0].text == "Klaus is writing a research paper"


def test_reflection_counter_and_validation() -> None:
    mem = stream(1, 1, 1)
    mem.add("observation", "a", 0.0, 4)
    mem.add("chat", "b", 0.0, 6)
    mem.add("reflection", "c", 0.0, 8)
    assert mem.importance_since_reflection == 10
    with pytest.raises(ValueError, match="importance"):
        mem.add("observation", "d", 0.0, 11)
    with pytest.raises(ValueError, match="choose one of: observation"):
        mem.add("dream", "e", 0.0, 1)


def test_hash_embedder_is_unit_length_and_stable() -> None:
    a = HashEmbedder().embed(["the cafe opens at 8am", ""])
    b = HashEmbedder().embed(["the cafe opens at 8am"])
    assert np.allclose(np.linalg.norm(a[0]), 1.0) and np.array_equal(a[0], b[0]) and not a[1].any()


def test_make_embedder_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="choose one of: auto, hash, minilm"):
        make_embedder("glove")
    assert make_embedder("hash").name == "hash"


@pytest.mark.skipif(minilm_available() is not None, reason=f"{minilm_available()}")
def test_minilm_relevance_understands_paraphrase() -> None:
    mem = MemoryStream(make_embedder("minilm"), RetrievalWeights(0, 0, 1))
    for text in ["Klaus is writing a research paper", "Isabella is brewing espresso for guests", "the grass is wet"]:
        mem.add("observation", text, 0.0, 3)
    assert mem.embedder.name == "minilm"
    assert mem.retrieve("someone is making coffee", 0.0, 1)[0].text == "Isabella is brewing espresso for guests"
