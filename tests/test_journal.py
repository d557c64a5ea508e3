"""The LLM journal: a journaled call is answered without reaching the backend; a virtual answer is checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from metropolis.llm.journal import Journal, JournalBackend, JournalResponder
from metropolis.llm.serving.responder import PlaceholderResponder, Reply
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.store import SqliteStore


class Counting:
    def __init__(self) -> None:
        self.asked: list[tuple[int | None, int]] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.asked.append((request.agent_id, request.step))
        return LLMResponse(f"answer {len(self.asked)}", 5, 2, start=1.0, end=2.0)


def _requests() -> list[LLMRequest]:
    return [
        LLMRequest("a", 0, "plan", (({"role": "user", "content": "x"}),), agent_id=0),
        LLMRequest("a", 0, "plan", (({"role": "user", "content": "y"}),), agent_id=0),
        LLMRequest("b", 0, "plan", (({"role": "user", "content": "x"}),), agent_id=1),
        LLMRequest("a", 1, "plan", (({"role": "user", "content": "x"}),), agent_id=0),
    ]


def _ask(backend: JournalBackend, requests: list[LLMRequest]) -> list[str]:
    async def go() -> list[str]:
        return [(await backend.complete(r)).text for r in requests]

    return asyncio.run(go())


def test_a_second_run_asks_only_what_the_journal_lacks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    first = Counting()
    texts = _ask(JournalBackend(first, Journal(store)), _requests()[:3])
    assert texts == ["answer 1", "answer 2", "answer 3"]
    second, journal = Counting(), Journal(store)
    again = _ask(JournalBackend(second, journal), _requests())
    assert again == [*texts, "answer 1"]
    assert second.asked == [(0, 1)] and (journal.hits, journal.misses) == (3, 1)


def test_a_run_that_asks_something_else_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    _ask(JournalBackend(Counting(), Journal(store)), _requests()[:1])
    other = LLMRequest("a", 0, "plan", (({"role": "user", "content": "changed"}),), agent_id=0)
    with pytest.raises(ValueError, match="another prompt"):
        _ask(JournalBackend(Counting(), Journal(store)), [other])


class Flaky:
    def __init__(self) -> None:
        self.n = 0

    def respond(self, request: LLMRequest) -> Reply:
        self.n += 1
        return Reply(f"t{self.n}", 1)


def test_virtual_answers_are_recomputed_and_checked(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    request = _requests()[0]
    assert JournalResponder(PlaceholderResponder(), Journal(store)).respond(request).tokens == 22
    journal = Journal(store)
    JournalResponder(PlaceholderResponder(), journal).respond(request)
    assert journal.hits == 1
    Flaky().respond(request)
    with pytest.raises(ValueError, match="not deterministic"):
        JournalResponder(Flaky(), Journal(store)).respond(request)
