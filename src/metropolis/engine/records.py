"""What an engine reports as it runs: one record per agent-step and per LLM call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from metropolis.engine.state import AgentState


@dataclass(frozen=True, slots=True)
class StepRecord:
    """Agent `agent` executed `step` and reached `state`, having observed `observed` and written into `partners`."""

    agent: int
    name: str
    step: int
    state: AgentState
    observed: tuple[int, ...]
    partners: tuple[int, ...]
    llm_calls: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One answered LLM call, as the engine reports it: whose, at which step, its tokens and timing (from the
    response), and the attempts it took (1 unless a client retried)."""

    agent: int
    name: str
    step: int
    function: str
    prompt_tokens: int
    output_tokens: int
    start: float
    end: float
    endpoint: str
    prompt: str | None = None
    output: str | None = None
    attempts: int = 1


class Listener(Protocol):
    """Receives the records as they happen (a trace recorder, a timeline printer, a memory manager)."""

    def on_step(self, record: StepRecord) -> None: ...

    def on_call(self, record: CallRecord) -> None: ...
