"""Records an engine run as a trace: a Listener that the simulation calls for every agent-step and LLM call.

The per-record cost is one list append (the engine's records are frozen, so keeping them is safe); every
`chunk_rows` records the buffer is turned into one Arrow row group, written to disk when the recorder has a
folder. So a run of millions of records holds at most one chunk of Python objects at a time.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.trace.schema import CALLS_SCHEMA, STEPS_SCHEMA, TraceMeta
from metropolis.trace.store import META_FILE, TableWriter, Trace, table_file

if TYPE_CHECKING:
    from metropolis.engine.simulation import Simulation


def calls_batch(records: list[CallRecord]) -> pa.Table:
    prompts = [r.prompt for r in records]
    outputs = [r.output for r in records]
    columns = {
        "agent": [r.agent for r in records],
        "name": [r.name for r in records],
        "step": [r.step for r in records],
        "function": [r.function for r in records],
        "prompt_tokens": [r.prompt_tokens for r in records],
        "output_tokens": [r.output_tokens for r in records],
        "prompt_chars": [None if p is None else len(p) for p in prompts],
        "output_chars": [None if o is None else len(o) for o in outputs],
        "max_tokens": [None] * len(records),
        "prompt": prompts,
        "output": outputs,
        "start": [r.start for r in records],
        "end": [r.end for r in records],
        "endpoint": [r.endpoint for r in records],
    }
    return pa.Table.from_pydict(columns, schema=CALLS_SCHEMA)


def steps_batch(records: list[StepRecord]) -> pa.Table:
    states = [r.state for r in records]
    columns = {
        "agent": [r.agent for r in records],
        "name": [r.name for r in records],
        "step": [r.step for r in records],
        "x": [s.pos[0] for s in states],
        "y": [s.pos[1] for s in states],
        "action": [s.action for s in states],
        "events": [s.events for s in states],
        "observed": [r.observed for r in records],
        "partners": [r.partners for r in records],
        "llm_calls": [r.llm_calls for r in records],
        "start": [r.start for r in records],
        "end": [r.end for r in records],
    }
    return pa.Table.from_pydict(columns, schema=STEPS_SCHEMA)


class _Sink:
    """Where the row groups of one table go: a Parquet file, or (without a folder) a list kept in memory."""

    def __init__(self, table: str, folder: Path | None) -> None:
        self.table = table
        self.writer = None if folder is None else TableWriter(table_file(folder, table), table)
        self.kept: list[pa.Table] = []

    def put(self, batch: pa.Table) -> None:
        if self.writer is None:
            self.kept.append(batch)
        else:
            self.writer.write(batch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class TraceRecorder:
    """Collects `StepRecord`s and `CallRecord`s; `close()` writes the trace or returns it."""

    def __init__(
        self, path: Path | str | None = None, meta: TraceMeta | None = None, chunk_rows: int = 65_536
    ):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.folder = None if path is None else Path(path)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.chunk_rows = chunk_rows
        self._calls: list[CallRecord] = []
        self._steps: list[StepRecord] = []
        self._call_sink = _Sink("calls", self.folder)
        self._step_sink = _Sink("steps", self.folder)
        self._names: dict[int, str] = {}
        self._closed = False

    @classmethod
    def for_simulation(
        cls,
        sim: Simulation,
        path: Path | str | None = None,
        run_id: str | None = None,
        chunk_rows: int = 65_536,
    ) -> TraceRecorder:
        """A recorder whose metadata describes `sim`; attach it with `sim.listeners.append(recorder)`."""
        meta = TraceMeta(
            source="metropolis",
            agent_names=[a.name for a in sim.agents],
            seconds_per_step=float(sim.world.seconds_per_step),
            start_seconds=sim.start_seconds,
            run_id=run_id,
            scheduler=type(sim.scheduler).name,
            world=sim.world.name,
            seed=sim.seed,
        )
        return cls(path, meta, chunk_rows)

    # -- the Listener protocol -------------------------------------------------------------------------------

    def on_step(self, record: StepRecord) -> None:
        if self._closed:
            raise RuntimeError("this trace recorder is closed; attach a new one for another run")
        self._steps.append(record)
        if len(self._steps) >= self.chunk_rows:
            self._flush_steps()

    def on_call(self, record: CallRecord) -> None:
        if self._closed:
            raise RuntimeError("this trace recorder is closed; attach a new one for another run")
        self._calls.append(record)
        if len(self._calls) >= self.chunk_rows:
            self._flush_calls()

    # -- flushing --------------------------------------------------------------------------------------------

    def _flush_steps(self) -> None:
        if self._steps:
            self._names.update((r.agent, r.name) for r in self._steps)
            self._step_sink.put(steps_batch(self._steps))
            self._steps = []

    def _flush_calls(self) -> None:
        if self._calls:
            self._names.update((r.agent, r.name) for r in self._calls)
            self._call_sink.put(calls_batch(self._calls))
            self._calls = []

    def close(self) -> Trace:
        """Flush what is left, write the metadata, return the trace (read back from disk if written there)."""
        if self._closed:
            raise RuntimeError("this trace recorder is already closed")
        self._flush_steps()
        self._flush_calls()
        self._closed = True
        self._call_sink.close()
        self._step_sink.close()
        meta = self.meta or TraceMeta(source="metropolis", agent_names=self._seen_names())
        if self.folder is not None:
            (self.folder / META_FILE).write_text(meta.to_json() + "\n", encoding="utf-8")
            return Trace.read(self.folder)
        return Trace.of(meta, _concat(self._call_sink, CALLS_SCHEMA), _concat(self._step_sink, STEPS_SCHEMA))

    def _seen_names(self) -> list[str]:
        """Agent names by id, from the records (ids never seen get a placeholder, so ids stay positions)."""
        if not self._names:
            return []
        return [self._names.get(i, f"agent{i}") for i in range(max(self._names) + 1)]

    def __enter__(self) -> TraceRecorder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._closed:
            self.close()


def _concat(sink: _Sink, schema: pa.Schema) -> pd.DataFrame:
    table = pa.concat_tables(sink.kept) if sink.kept else schema.empty_table()
    return table.to_pandas()
