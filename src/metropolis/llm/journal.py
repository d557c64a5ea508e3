"""The LLM journal: every answered call recorded durably as it arrives, so a resumed run asks no call twice.

A call is keyed by the agent it is for, its step, its index among that agent's calls of that step (counted here,
from 0: an agent's calls within a step are made one after another, so the index is the same in every run), and
a hash of what it asks. `JournalBackend` wraps a live backend (an HTTP client): a journaled call is answered
from the journal without reaching the server, a new one is passed on and its answer recorded before it is
returned. `JournalResponder` wraps the text source of the virtual LLM: there the answer is cheap and
deterministic, so it is always computed and checked against the journal (a resumed run that answers
differently is an error, not a silent fork), and the serving model still times every call.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict

from metropolis.llm.serving.responder import Reply, Responder
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.store.base import JournalKey, RunStore


def prompt_hash(request: LLMRequest) -> str:
    """What the call asks, hashed: its function, messages and sampling settings (their `repr`, which is
    deterministic for these plain values and several times cheaper than JSON)."""
    asked = (request.function, request.messages, request.max_tokens, request.temperature, request.json_schema)
    return hashlib.blake2b(repr(asked).encode("utf-8"), digest_size=12).hexdigest()


class Journal:
    """Keys calls and counts what was answered from the journal (`hits`) and what was asked anew (`misses`)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.hits = 0
        self.misses = 0
        self.empty = store.journal_size() == 0  # a fresh run: nothing to look up
        self._at: dict[int, tuple[int, int]] = {}  # agent -> (its step now, calls counted in that step)

    def key(self, request: LLMRequest) -> JournalKey:
        """An agent is at one step at a time, so one counter per agent suffices; it restarts with each step."""
        agent = -1 if request.agent_id is None else request.agent_id
        step, n = self._at.get(agent, (request.step, 0))
        if step != request.step:
            n = 0
        self._at[agent] = (request.step, n + 1)
        return JournalKey(agent, request.step, n, prompt_hash(request))


class JournalBackend:
    """An `LLMBackend` that answers journaled calls from the journal and records new answers durably."""

    def __init__(self, inner: LLMBackend, journal: Journal) -> None:
        self.inner = inner
        self.journal = journal

    async def complete(self, request: LLMRequest) -> LLMResponse:
        journal = self.journal
        key = journal.key(request)
        found = None if journal.empty else journal.store.journal_get(key)
        if found is not None:
            journal.hits += 1
            return LLMResponse(**found)
        response = await self.inner.complete(request)
        journal.store.journal_put(key, asdict(response))
        journal.misses += 1
        return response


class JournalResponder(Responder):
    """A `Responder` (the virtual LLM's text source) whose answers are journaled and checked on a resume."""

    def __init__(self, inner: Responder, journal: Journal) -> None:
        self.inner = inner
        self.journal = journal

    def respond(self, request: LLMRequest) -> Reply:
        journal = self.journal
        key = journal.key(request)
        reply = self.inner.respond(request)
        found = None if journal.empty else journal.store.journal_get(key)
        if found is None:
            journal.store.journal_put(key, {"text": reply.text, "tokens": reply.tokens})
            journal.misses += 1
            return reply
        journal.hits += 1
        if found != {"text": reply.text, "tokens": reply.tokens}:
            raise ValueError(
                f"call #{key.index} of agent {key.agent} at step {key.step} got another answer than the journaled "
                "one: the responder is not deterministic, so this run cannot be resumed exactly"
            )
        return reply
