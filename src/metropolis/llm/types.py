"""The records at the boundary between agents and whatever answers their LLM calls."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from metropolis.compiled import picklable

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text and Llama-3's tokenizer
# How far ahead of every step an interactive request is ranked: a person waits for it, so it goes before any
# background request whatever its step (and still lowest step first among interactive ones). Fits an int32.
INTERACTIVE_LEAD = 1_000_000_000


def estimate_tokens(text: str) -> int:
    """Tokens in `text` by ~4 characters per token (at least 1): for servers that report no usage and for
    workloads that carry text but no counts."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass(frozen=True, slots=True, init=False)
class LLMRequest:
    """One LLM call of one agent at one step.

    `step` is the scheduling priority (lowest step first). `prompt_tokens` / `output_tokens` are known up front
    when a workload or a trace dictates them (virtual time, replay); a live agent leaves them None and the backend
    counts. `hints` carries memory hints for agent-aware serving (e.g. the agent's invocation distance).
    `interactive` marks the latency class: a person in the town waits for this answer (the player, or an agent
    within its horizon), so it is ranked ahead of every background request and may preempt background work.
    """

    agent: str
    step: int
    function: str
    messages: tuple[dict[str, str], ...]
    max_tokens: int
    temperature: float
    prompt_tokens: int | None
    output_tokens: int | None
    json_schema: dict[str, Any] | None
    agent_id: int | None
    hints: dict[str, Any]
    interactive: bool

    def __init__(
        self,
        agent: str,
        step: int,
        function: str,
        messages: tuple[dict[str, str], ...] = (),
        max_tokens: int = 128,
        temperature: float = 0.0,
        prompt_tokens: int | None = None,
        output_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None,
        agent_id: int | None = None,
        hints: dict[str, Any] | None = None,
        interactive: bool = False,
    ) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "agent", agent)
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "messages", messages)
        object.__setattr__(self, "max_tokens", max_tokens)
        object.__setattr__(self, "temperature", temperature)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "output_tokens", output_tokens)
        object.__setattr__(self, "json_schema", json_schema)
        object.__setattr__(self, "agent_id", agent_id)
        object.__setattr__(self, "hints", {} if hints is None else hints)
        object.__setattr__(self, "interactive", interactive)

    @property
    def priority(self) -> int:
        """Lowest first: the step, or far below every step for the interactive class."""
        return self.step - INTERACTIVE_LEAD if self.interactive else self.step

    def prompt_text(self) -> str:
        return "\n".join(m.get("content", "") for m in self.messages)


@dataclass(frozen=True, slots=True, init=False)
class LLMResponse:
    """What came back, with the token counts and its timeline on the runtime's own clock.

    `start` (the request arrived, or got its in-flight slot) and `end` (the last token is out) are always set;
    `admitted` (its prefill began) and `first_token` only where the backend knows them (the serving model in
    virtual time does; an HTTP server does not say). This is the one record of a call's timing: summaries of
    the serving model and the engine's `CallRecord` are built from it.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    start: float
    end: float
    endpoint: str
    attempts: int
    admitted: float | None
    first_token: float | None

    def __init__(
        self,
        text: str,
        prompt_tokens: int,
        completion_tokens: int,
        start: float = 0.0,
        end: float = 0.0,
        endpoint: str = "",
        attempts: int = 1,
        admitted: float | None = None,
        first_token: float | None = None,
    ) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "completion_tokens", completion_tokens)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "endpoint", endpoint)
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "admitted", admitted)
        object.__setattr__(self, "first_token", first_token)

    @property
    def latency(self) -> float:
        return self.end - self.start

    @property
    def queue_wait(self) -> float | None:
        """Seconds from arrival to admission, where the backend knows them."""
        return None if self.admitted is None else self.admitted - self.start

    @property
    def ttft(self) -> float | None:
        """Seconds from arrival to the first token, where the backend knows them."""
        return None if self.first_token is None else self.first_token - self.start


class LLMBackend(Protocol):
    """Anything that answers LLM calls: an HTTP client, the serving model in virtual time, a replay."""

    async def complete(self, request: LLMRequest) -> LLMResponse: ...


picklable(LLMRequest, LLMResponse)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
