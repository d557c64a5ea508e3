"""What an engine reports as it runs: one record per agent-step and per LLM call."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from metropolis.compiled import picklable
from metropolis.engine.state import AgentState


@dataclass(frozen=True, slots=True, init=False)
class Plan:
    """What an agent knows of its next LLM call, published at step `step`: not before step `next_call`.

    ScaleSim's "sparse activation": an agent walking a known path or asleep until 6 am calls no LLM until then,
    unless somebody comes near (serving memory caps a plan by that spatial bound itself).
    """

    step: int
    next_call: int

    def __init__(self, step: int, next_call: int) -> None:
        if next_call < step:
            raise ValueError(f"a plan published at step {step} names an earlier next call ({next_call})")
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "next_call", next_call)

    @classmethod
    def walking(cls, step: int, tiles: int, velocity: float = 1.0) -> Plan:
        """Following a planned path calls no LLM until it ends."""
        return cls(step, step + math.ceil(tiles / velocity))

    @classmethod
    def asleep(cls, step: int, until: int) -> Plan:
        return cls(step, until)


@dataclass(frozen=True, slots=True, init=False)
class StepRecord:
    """Agent `agent` executed `step` and reached `state`, having observed `observed` and written into `partners`;
    `plan` is the last plan it published during the step, if any."""

    agent: int
    name: str
    step: int
    state: AgentState
    observed: tuple[int, ...]
    partners: tuple[int, ...]
    llm_calls: int
    start: float
    end: float
    plan: Plan | None

    def __init__(
        self,
        agent: int,
        name: str,
        step: int,
        state: AgentState,
        observed: tuple[int, ...],
        partners: tuple[int, ...],
        llm_calls: int,
        start: float,
        end: float,
        plan: Plan | None = None,
    ) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "agent", agent)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "observed", observed)
        object.__setattr__(self, "partners", partners)
        object.__setattr__(self, "llm_calls", llm_calls)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "plan", plan)


@dataclass(frozen=True, slots=True, init=False)
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
    prompt: str | None
    output: str | None
    attempts: int

    def __init__(
        self,
        agent: int,
        name: str,
        step: int,
        function: str,
        prompt_tokens: int,
        output_tokens: int,
        start: float,
        end: float,
        endpoint: str,
        prompt: str | None = None,
        output: str | None = None,
        attempts: int = 1,
    ) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "agent", agent)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "output_tokens", output_tokens)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "endpoint", endpoint)
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "attempts", attempts)


class CallListener(Protocol):
    """Receives only the call records (the accounting): cheaper, since no step record is built for it."""

    def on_call(self, record: CallRecord) -> None: ...


class Listener(Protocol):
    """Receives the records as they happen (a trace recorder, a timeline printer, a memory manager)."""

    def on_step(self, record: StepRecord) -> None: ...

    def on_call(self, record: CallRecord) -> None: ...


picklable(Plan, StepRecord, CallRecord)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
