"""Model and agent reporters, Mesa's `DataCollector` for an out-of-order engine.

Agents commit their steps out of order (agent 3 may reach step 40 while agent 7 is at step 12), so a reporter
cannot run "at the end of step s" the way Mesa's does. The collector is a listener instead: it keeps the step
records of every step it samples (every `every`-th) and runs the reporters once all agents have committed that
step. Reporters see only what the step committed (its `StepRecord`: position, action, what it said, whom it
observed and wrote into, its LLM calls) and the agent object as it stood right after its own step (its next step
cannot start before this commit). Both are the same under every scheduling policy, so the frames are too: the
one exception is the record's `start` / `end` (the runtime's clock), which a reporter should not read.

- an agent reporter is a callable `(record, agent) -> value`, or a name: a field of the committed state
  (`pos`, `action`, `events`), of the record (`llm_calls`, `observed`, `partners`), or else an agent attribute;
- a model reporter is a callable `(records) -> value` over the step's records of all agents, by agent id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metropolis.engine.agent import Agent
from metropolis.engine.records import CallRecord, StepRecord

AgentReporter = Callable[[StepRecord, Agent], Any] | str
ModelReporter = Callable[[Sequence[StepRecord]], Any]
STATE_FIELDS = ("pos", "action", "events")
RECORD_FIELDS = ("llm_calls", "observed", "partners", "plan")
MODEL_FILE = "model.parquet"
AGENTS_FILE = "agents.parquet"


def _by_name(name: str) -> Callable[[StepRecord, Agent], Any]:
    if name in STATE_FIELDS:
        return lambda record, agent: getattr(record.state, name)
    if name in RECORD_FIELDS:
        return lambda record, agent: getattr(record, name)

    def attribute(record: StepRecord, agent: Agent) -> Any:
        if not hasattr(agent, name):
            raise AttributeError(
                f"agent reporter {name!r}: {type(agent).__name__} has no such attribute, and it is not one of "
                f"{', '.join(STATE_FIELDS + RECORD_FIELDS)}"
            )
        return getattr(agent, name)

    return attribute


class DataCollector:
    """A listener: `sim.listeners.append(collector)`; after the run, `model_frame()` and `agent_frame()`."""

    def __init__(
        self,
        agents: Sequence[Agent],
        model_reporters: Mapping[str, ModelReporter] | None = None,
        agent_reporters: Mapping[str, AgentReporter] | None = None,
        every: int = 1,
    ) -> None:
        if every < 1:
            raise ValueError(f"reporters run every N steps with N >= 1, got {every}")
        self.agents = list(agents)
        self.every = every
        self.model_reporters = dict(model_reporters or {})
        self.agent_reporters = {k: _by_name(v) if isinstance(v, str) else v for k, v in (agent_reporters or {}).items()}
        self._pending: dict[int, dict[int, StepRecord]] = {}
        self._model_rows: list[dict[str, Any]] = []
        self._agent_rows: list[dict[str, Any]] = []

    # -- the Listener protocol -------------------------------------------------------------------------------

    def on_step(self, record: StepRecord) -> None:
        if record.step % self.every:
            return
        if self.agent_reporters:
            agent = self.agents[record.agent]  # right after its own step: the same under every policy
            row = {"step": record.step, "agent": record.agent, "name": record.name}
            row.update({key: fn(record, agent) for key, fn in self.agent_reporters.items()})
            self._agent_rows.append(row)
        if self.model_reporters:
            waiting = self._pending.setdefault(record.step, {})
            waiting[record.agent] = record
            if len(waiting) == len(self.agents):
                del self._pending[record.step]
                records = [waiting[i] for i in range(len(self.agents))]
                row = {"step": record.step}
                row.update({key: fn(records) for key, fn in self.model_reporters.items()})
                self._model_rows.append(row)

    def on_call(self, record: CallRecord) -> None:
        """Calls reach the reporters through their step's `llm_calls`."""

    # -- the results -----------------------------------------------------------------------------------------

    def model_frame(self) -> pd.DataFrame:
        """One row per sampled step (in step order), one column per model reporter."""
        frame = pd.DataFrame(self._model_rows, columns=["step", *self.model_reporters])
        return frame.sort_values("step", kind="stable").reset_index(drop=True)

    def agent_frame(self) -> pd.DataFrame:
        """One row per (sampled step, agent), in that order, one column per agent reporter."""
        frame = pd.DataFrame(self._agent_rows, columns=["step", "agent", "name", *self.agent_reporters])
        return frame.sort_values(["step", "agent"], kind="stable").reset_index(drop=True)

    def write(self, folder: Path) -> list[Path]:
        """The frames as Parquet files beside the trace (`model.parquet`, `agents.parquet`), those with columns."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame, reporters in (
            (MODEL_FILE, self.model_frame(), self.model_reporters),
            (AGENTS_FILE, self.agent_frame(), self.agent_reporters),
        ):
            if reporters:
                path = folder / name
                _storable(frame).to_parquet(path, index=False)
                written.append(path)
        return written


def _storable(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuples (positions, agent ids) become lists, which Parquet stores; other values go as they are."""
    out = frame.copy()
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, tuple)).any():
            out[column] = out[column].map(lambda v: list(v) if isinstance(v, tuple) else v)
    return out
