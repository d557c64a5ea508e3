"""What the virtual LLM answers: the text of a response and its length in tokens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from mypy_extensions import mypyc_attr

from metropolis.compiled import picklable
from metropolis.llm.types import LLMRequest, estimate_tokens


@dataclass(frozen=True, slots=True)
class Reply:
    """`prompt_tokens`, when known (a recorded call), replaces the backend's estimate from the prompt text."""

    text: str
    tokens: int
    prompt_tokens: int | None = None


class Recorded(NamedTuple):
    """A recorded answer with the token counts the run that recorded it measured."""

    text: str
    prompt_tokens: int
    output_tokens: int


@mypyc_attr(allow_interpreted_subclasses=True)
class Responder(ABC):
    """The text (and lengths) of the virtual LLM's answer. A base class rather than a Protocol: it runs on every
    request, and compiled code calls a class's methods natively, a protocol's through Python (metropolis/compiled.py).
    """

    @abstractmethod
    def respond(self, request: LLMRequest) -> Reply: ...


class PlaceholderResponder(Responder):
    """Filler text of the right length: `request.output_tokens`, else min(max_tokens, default_tokens)."""

    def __init__(self, default_tokens: int = 22) -> None:
        if default_tokens < 1:
            raise ValueError(f"default_tokens must be >= 1, got {default_tokens}")
        self.default_tokens = default_tokens
        self._replies: dict[int, Reply] = {}  # by length: a run asks for a few lengths thousands of times

    def respond(self, request: LLMRequest) -> Reply:
        n = request.output_tokens
        if n is None:
            n = min(request.max_tokens, self.default_tokens)
        n = max(1, n)
        reply = self._replies.get(n)
        if reply is None:
            # "tok " is 4 characters: estimate_tokens gives n back
            reply = self._replies[n] = Reply(" ".join(["tok"] * n), n)
        return reply


class ReplayResponder(Responder):
    """Recorded answers keyed (agent, step, function, n), n counting that agent's calls of that function in
    that step from 0. The token counts are the recorded ones when the answer is `Recorded`, else
    `request.output_tokens` when the workload fixes it, else estimated from the text. A missing key falls back to
    `fallback`, or raises."""

    def __init__(
        self, answers: Mapping[tuple[str, int, str, int], str | Recorded], fallback: Responder | None = None
    ) -> None:
        self.answers = answers
        self.fallback = fallback
        self._seen: dict[tuple[str, int, str], int] = {}

    def respond(self, request: LLMRequest) -> Reply:
        call = (request.agent, request.step, request.function)
        n = self._seen.get(call, 0)
        self._seen[call] = n + 1
        answer = self.answers.get((*call, n))
        if answer is None:
            if self.fallback is None:
                raise ValueError(
                    f"replay has no answer for agent {request.agent!r}, step {request.step}, function "
                    f"{request.function!r}, call #{n}; record it or give the ReplayResponder a fallback"
                )
            return self.fallback.respond(request)
        if isinstance(answer, Recorded):
            return Reply(answer.text, max(1, answer.output_tokens), answer.prompt_tokens)
        tokens = request.output_tokens if request.output_tokens is not None else estimate_tokens(answer)
        return Reply(answer, max(1, tokens))


picklable(Reply)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
