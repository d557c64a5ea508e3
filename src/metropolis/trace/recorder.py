"""Records an engine run as a trace: a Listener that the simulation calls for every agent-step and LLM call.

The per-step cost is one list append (the engine's records are frozen, so keeping them is safe); every
`chunk_rows` steps the buffer is turned into one Arrow row group per table (the steps, and their calls), written
to disk when the recorder has a folder. So a run of millions of records holds at most one chunk of Python
objects at a time.

On disk a table is written as part files (`trace.parts`): `checkpoint()` seals them, so a run killed later
leaves a trace readable up to its last checkpoint, and `close()` joins them into one file. A step's calls are
held until the step's own record arrives and then kept or dropped with it: a resumed run (`skip`) re-executes
the steps its checkpoint already holds, and drops their records whole.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.interrupts import signals_deferred
from metropolis.trace.parts import PartWriter, read_parts
from metropolis.trace.schema import CALLS_SCHEMA, STEPS_SCHEMA, TABLES, TraceMeta
from metropolis.trace.store import META_FILE, Trace
from metropolis.trace.units import Dispatched, UnitLog

if TYPE_CHECKING:
    from metropolis.engine.simulation import Simulation

PIECE_ROWS = 2_048  # buffered steps per piece, when a live view reads the recorder (`share`)


def columns_table(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """Python lists to Arrow columns; strings are encoded after conversion, which is several times faster. A
    column the caller does not know (a nullable one added later) is all null."""
    arrays = []
    rows = len(next(iter(columns.values()))) if columns else 0
    for field in schema:
        if field.name not in columns and field.nullable:
            arrays.append(pa.nulls(rows, field.type))
            continue
        if pa.types.is_dictionary(field.type):
            arrays.append(pa.array(columns[field.name], pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(columns[field.name], field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def calls_batch(records: list[CallRecord]) -> pa.Table:
    prompts = [r.prompt for r in records]
    outputs = [r.output for r in records]
    columns: dict[str, list[Any]] = {
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
    return columns_table(columns, CALLS_SCHEMA)


def steps_batch(records: list[StepRecord], scheduled: dict[tuple[int, int], Dispatched] | None = None) -> pa.Table:
    """`scheduled` maps (agent, step) to how it was dispatched where a `UnitLog` saw the dispatch; the rows it
    names are taken out of it."""
    states = [r.state for r in records]
    seen = [scheduled.pop((r.agent, r.step), None) for r in records] if scheduled else [None] * len(records)
    columns: dict[str, list[Any]] = {
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
        "plan_next": [None if r.plan is None else r.plan.next_call for r in records],
        "unit": [None if u is None else u[0] for u in seen],
        "gvt": [None if u is None else u[1] for u in seen],
        "speculative": [None if u is None else u.speculative for u in seen],
        "undone": [None if u is None else u.undone for u in seen],
    }
    return columns_table(columns, STEPS_SCHEMA)


class _Table:
    """Where one table's row groups go: its part files, or (without a folder) a list kept in memory."""

    def __init__(self, table: str, folder: Path | None, chunk_rows: int) -> None:
        self.table = table
        self.writer = None if folder is None else PartWriter(folder, table, chunk_rows)
        self.kept: list[pa.Table] = []

    def write(self, batch: pa.Table) -> None:
        if self.writer is None:
            self.kept.append(batch)
        else:
            self.writer.write(batch)

    def seal(self) -> list[str]:
        """Seal what was written as a part: the names of every sealed part."""
        return [] if self.writer is None else self.writer.seal()

    def close(self) -> pd.DataFrame | None:
        """Join the parts into the table's file, or return the kept rows as one frame (without a folder)."""
        if self.writer is not None:
            self.writer.finish()
            return None
        return (pa.concat_tables(self.kept) if self.kept else TABLES[self.table].empty_table()).to_pandas()


def simulation_meta(sim: Simulation, run_id: str | None = None) -> TraceMeta:
    """The metadata of a trace of `sim`; `extra` holds the rules' radius and velocity for the viewer."""
    return TraceMeta(
        source="metropolis",
        agent_names=[a.name for a in sim.agents],
        seconds_per_step=float(sim.world.seconds_per_step),
        start_seconds=sim.start_seconds,
        run_id=run_id,
        scheduler=type(sim.scheduler).name,
        world=sim.world.name,
        seed=sim.seed,
        extra={"perception_radius": sim.world.perception_radius, "max_velocity": sim.world.max_velocity},
    )


class TraceRecorder:
    """Collects `StepRecord`s and `CallRecord`s; `close()` writes the trace (to the folder, if given)."""

    def __init__(
        self,
        path: Path | str | None = None,
        meta: TraceMeta | None = None,
        chunk_rows: int = 65_536,
        parts: dict[str, list[str]] | None = None,
    ):
        """`parts`: resume a trace whose checkpoint sealed these parts (per table); the steps they hold are
        skipped when the resumed run records them again, and parts sealed after the checkpoint are dropped."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.folder = None if path is None else Path(path)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.chunk_rows = chunk_rows
        self.names: dict[int, str] = {}
        self.closed = False
        self._result: Trace | None = None
        self._calls = _Table("calls", self.folder, chunk_rows)
        self._steps = _Table("steps", self.folder, chunk_rows)
        self.units: UnitLog | None = None  # set by `for_simulation`: the scheduler columns
        self._pending: list[CallRecord] = []  # the calls of the step whose record comes next
        # Steps with their calls, awaiting their row groups: one append per step, so a signal raised as an
        # exception (SIGTERM, Ctrl-C) never keeps a step's calls without the step, nor the step without them.
        self._records: list[tuple[StepRecord | None, list[CallRecord]]] = []
        self.skip: set[tuple[int, int]] = set()  # (agent, step) already in the sealed parts
        # For a live view (`share`): the row groups built so far, kept in memory too, and a lock that a flush
        # holds from taking the buffer to keeping its row groups, so that a reader never counts a step twice or
        # misses it (see `rows_since`).
        self.shared: list[tuple[pa.Table | None, pa.Table | None]] | None = None
        self._share_lock = threading.Lock()
        # Shared, the buffer's steps are also built into Arrow pieces as they come (`_piece`), which the flush
        # joins into its row group: the same work, done earlier, so a reader converts at most a piece's rows.
        self._pieces: list[pa.Table] = []
        self._piece_rows = 0  # the buffered steps the pieces hold
        self._piece_size = PIECE_ROWS
        self._due = chunk_rows  # buffered entries at which `on_step` has work to do
        if parts is not None:
            self._resume(parts)
        if self.folder is not None and meta is not None:
            self._write_meta(meta)  # at the start too: a run that dies midway still says what it was

    @classmethod
    def for_simulation(
        cls,
        sim: Simulation,
        path: Path | str | None = None,
        run_id: str | None = None,
        chunk_rows: int = 65_536,
        parts: dict[str, list[str]] | None = None,
    ) -> TraceRecorder:
        """A recorder whose metadata describes `sim`; attach it with `sim.listeners.append(recorder)`."""
        recorder = cls(path, simulation_meta(sim, run_id), chunk_rows, parts)
        recorder.units = UnitLog.attach(sim)
        return recorder

    def _steps_batch(self, records: list[StepRecord]) -> pa.Table:
        """Built from a copy of the rows' scheduler columns, taken out of the `UnitLog` once written
        (`_written`): a failure while building leaves them for the batch built again."""
        if self.units is None:
            return steps_batch(records)
        scheduled = self.units.scheduled
        return steps_batch(records, {k: scheduled[k] for r in records if (k := (r.agent, r.step)) in scheduled})

    def _steps_table(self, steps: list[StepRecord]) -> pa.Table:
        """The buffered `steps` as one table: the pieces built already, and the rest (strings joined into one
        dictionary per column, as a table built whole has)."""
        if not self._pieces:
            return self._steps_batch(steps)
        rest = steps[self._piece_rows :]
        return pa.concat_tables([*self._pieces, *([self._steps_batch(rest)] if rest else [])]).combine_chunks()

    def _written(self, records: list[StepRecord]) -> None:
        if self.units is not None:
            scheduled = self.units.scheduled
            for r in records:
                scheduled.pop((r.agent, r.step), None)

    # -- the Listener protocol -------------------------------------------------------------------------------

    def on_step(self, record: StepRecord) -> None:
        if self.closed:
            raise RuntimeError("this trace recorder is closed; attach a new one for another run")
        pending, self._pending = self._pending, []
        if self.skip and (record.agent, record.step) in self.skip:
            self.skip.discard((record.agent, record.step))
            return
        if self.units is not None:
            self.units.note(record)
        self._records.append((record, pending))
        if len(self._records) >= self._due:
            if len(self._records) >= self.chunk_rows:
                self.flush()
            else:
                self._piece()

    def _piece(self) -> None:
        """Build the buffered steps the pieces lack into one more piece (under the lock: a reader may be
        building the same steps into a piece of its own, `rows_since`)."""
        with self._share_lock:
            self._add_piece()
        self._due = min(self.chunk_rows, self._piece_rows + self._piece_size)

    def _add_piece(self) -> None:
        steps = [step for step, _ in self._records[self._piece_rows :] if step is not None]
        if steps:
            self._pieces.append(self._steps_batch(steps))
            self._piece_rows += len(steps)

    def on_call(self, record: CallRecord) -> None:
        self._pending.append(record)

    # -- checkpoints ------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Build the buffered steps and their calls into a row group per table and write them. A signal waits
        until both are handed to their writers (SIGTERM, Ctrl-C: the run then seals a last checkpoint, which
        must hold a step's calls if it holds the step); one raised while building leaves the records buffered."""
        if not self._records:
            return
        with signals_deferred(), self._share_lock:
            records, self._records = self._records, []
            try:
                steps = [step for step, _ in records if step is not None]
                calls = [call for _, step_calls in records for call in step_calls]
                self.names.update((r.agent, r.name) for r in calls)
                self.names.update((r.agent, r.name) for r in steps)
                batches = (calls_batch(calls) if calls else None, self._steps_table(steps) if steps else None)
            except BaseException:
                self._records = records + self._records
                raise
            self._pieces, self._piece_rows = [], 0
            self._due = min(self.chunk_rows, self._piece_size) if self.shared is not None else self.chunk_rows
            for table, batch in zip((self._calls, self._steps), batches, strict=True):
                if batch is not None:
                    table.write(batch)
            if self.shared is not None:
                self.shared.append((batches[1], batches[0]))
            self._written(steps)

    # -- a live reader (another thread) ----------------------------------------------------------------------

    def share(self, piece_rows: int = PIECE_ROWS) -> None:
        """Keep the row groups in memory as well, for `rows_since` and `calls_of` (a live view), and build the
        buffered steps in pieces of `piece_rows`. Costs the run nothing per step: they are built anyway."""
        if self.shared is None:
            self.shared = []
            self._piece_size = max(1, piece_rows)
            self._due = min(self.chunk_rows, self._piece_rows + self._piece_size)

    def rows_since(self, since: int) -> list[pa.Table]:
        """The steps recorded after the first `since`, in recording order, as the row groups and pieces built
        (sliced). The steps not yet in a piece are built into one here, in the caller's thread, and kept: the
        run does not build them again. Safe to call from another thread while the run records: the buffer is
        only appended to between flushes, and a flush or a new piece holds the lock."""
        assert self.shared is not None, "call share() before the run"
        with self._share_lock:
            self._add_piece()
            tables, at = [], 0
            for steps in [s for s, _ in self.shared if s is not None] + self._pieces:
                if at + len(steps) > since:
                    tables.append(steps.slice(max(0, since - at)))
                at += len(steps)
        return tables

    def calls_of(self, agent: int) -> pa.Table:
        """Every call of `agent` recorded so far (for a live view; see `rows_since`)."""
        assert self.shared is not None, "call share() before the run"
        with self._share_lock:
            tables = [calls for _, calls in self.shared if calls is not None]
            buffered = [c for _, calls in self._records for c in calls] + list(self._pending)
        mine = [t.filter(pc.equal(t["agent"], agent)) for t in tables]
        mine.append(calls_batch([c for c in buffered if c.agent == agent]))
        return pa.concat_tables(mine)

    def checkpoint(self) -> dict[str, list[str]]:
        """Seal what was recorded into part files (fsynced): the parts per table, for the checkpoint to name."""
        if self.closed:
            raise RuntimeError("this trace recorder is closed")
        with signals_deferred():
            self.flush()
            return {"calls": self._calls.seal(), "steps": self._steps.seal()}

    def write_behind(self, executor: Executor) -> None:
        """Write and seal the part files on `executor` (one thread), so the run goes on meanwhile; `close()`
        and a checkpoint's `drain()` wait for them (see `PartWriter`)."""
        for buffer in (self._calls, self._steps):
            if buffer.writer is not None:
                buffer.writer.executor = executor

    def drain(self) -> None:
        """Wait until the parts sealed so far are in place."""
        for buffer in (self._calls, self._steps):
            if buffer.writer is not None:
                buffer.writer.drain()

    def unsynced(self) -> list[Path]:
        """The part files sealed since the last call and their folders: what to fsync for a machine crash."""
        return [p for b in (self._calls, self._steps) if b.writer is not None for p in b.writer.unsynced()]

    def _resume(self, parts: dict[str, list[str]]) -> None:
        """Keep the checkpoint's parts. A run killed while `close()` joined its parts has some tables joined and
        some not: its simulation had ended, so its trace is recorded afresh by the resumed run (which re-executes
        every step anyway): nothing is kept."""
        assert self.folder is not None, "a resumed trace has a folder"
        joined = [self.folder / f"{table}.parquet" for table in ("calls", "steps")]
        if any(path.exists() for path in joined):
            for path in joined:
                path.unlink(missing_ok=True)
            parts = {}
        for buffer in (self._calls, self._steps):
            assert buffer.writer is not None
            buffer.writer.keep_only(parts.get(buffer.table, []))
        steps = read_parts(self.folder / "steps", "steps")
        self.skip = set(zip(steps.column("agent").to_pylist(), steps.column("step").to_pylist(), strict=True))

    # -- the end ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush what is left, join the parts into one file per table and write the metadata; `trace()` then
        gives the result."""
        if self.closed:
            raise RuntimeError("this trace recorder is already closed")
        if self._pending:  # calls of a step that never reported (a run stopped midway)
            self._records.append((None, self._pending))
        self._pending = []
        self.flush()
        self.closed = True
        calls, steps = self._calls.close(), self._steps.close()
        meta = self.meta or TraceMeta(source="metropolis", agent_names=self._seen_names())
        if self.folder is not None:
            self._write_meta(meta)
        else:
            self._result = Trace.of(meta, calls, steps)

    def _write_meta(self, meta: TraceMeta) -> None:
        """Write `meta.json` atomically (a temporary file, then a rename): a reader never sees half of it."""
        assert self.folder is not None
        tmp = self.folder / f".{META_FILE}.tmp"
        tmp.write_text(meta.to_json() + "\n", encoding="utf-8")
        os.replace(tmp, self.folder / META_FILE)

    def trace(self) -> Trace:
        """The recorded trace, after `close()`: kept in memory, or read back from the folder (which costs)."""
        if not self.closed:
            raise RuntimeError("close the recorder before asking for its trace")
        if self._result is not None:
            return self._result
        if self.folder is None:
            raise RuntimeError("this recorder has neither a folder nor a kept trace")
        return Trace.read(self.folder)

    def _seen_names(self) -> list[str]:
        """Agent names by id, from the records (ids never seen get a placeholder, so ids stay positions)."""
        if not self.names:
            return []
        return [self.names.get(i, f"agent{i}") for i in range(max(self.names) + 1)]

    def __enter__(self) -> TraceRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if not self.closed:
            self.close()
