"""Where the viewer's steps come from: a finished trace on disk (read in windows, with Parquet filters, so a
1,000-agent day scrubs without loading every row), or a run going on now (read from its trace recorder).

Both answer the same questions: the run's description, how many frames are complete (a frame k is complete
when every agent has committed step k), the step rows of a window of frames, the run's timeline (every step's
time span, for the scheduler layer) and one agent's calls and conversations. Windows and timelines stay Arrow
tables: what a page asks most often never becomes a DataFrame (`frames.numbers` reads their columns).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metropolis.trace.recorder import TraceRecorder
from metropolis.trace.schema import STEPS_SCHEMA, TraceMeta
from metropolis.trace.store import META_FILE, read_table, table_file

STEP_COLUMNS = [
    "agent", "step", "x", "y", "action", "start", "end", "unit", "gvt", "speculative", "undone", "llm_calls",
    "partners", "events",
]  # fmt: skip
TIMELINE_COLUMNS = ["agent", "step", "x", "y", "start", "end", "unit", "speculative", "undone"]
MAX_CHUNKS = 64  # a live view's chunks (one per look that found new steps) before they are joined into one
MAX_AHEAD = 2_000  # speculative steps a live summary lists (its counts say how many in all)


class StepSource(Protocol):
    def describe(self) -> dict[str, Any]: ...

    def complete(self) -> int: ...

    def window(self, first: int, last: int) -> pa.Table: ...

    def timeline(self, since: int = 0) -> pa.Table: ...

    def before(self, since: int) -> tuple[int, int]: ...

    def history(self, agent: int) -> pd.DataFrame: ...

    def calls(self, agent: int) -> pd.DataFrame: ...

    def conversations(self, agent: int) -> pd.DataFrame: ...

    def speculation(self, since: int) -> dict[str, Any] | None: ...


def describe(meta: TraceMeta, until: int, live: bool) -> dict[str, Any]:
    return {
        "agents": meta.agent_names,
        "until": until,
        "seconds_per_step": meta.seconds_per_step,
        "start_seconds": meta.start_seconds,
        "scheduler": meta.scheduler,
        "world": meta.world,
        "run_id": meta.run_id,
        "seed": meta.seed,
        "perception_radius": meta.extra.get("perception_radius", 4.0),
        "max_velocity": meta.extra.get("max_velocity", 1.0),
        "live": live,
    }


def trace_folder(run: Path) -> Path:
    """A run folder (with trace/) or a trace folder; anything else is a one-line error."""
    folder = run / "trace" if (run / "trace").is_dir() else run
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder")
    if not (folder / META_FILE).is_file() or not table_file(folder, "steps").is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no trace/meta.json and trace/steps.parquet)")
    return folder


class TraceSource:
    """A recorded run: windows are read from `steps.parquet` with a filter on `step`."""

    def __init__(self, run: Path) -> None:
        self.folder = trace_folder(run)
        self.meta = TraceMeta.from_json((self.folder / META_FILE).read_text(encoding="utf-8"))
        self._columns = [c for c in STEP_COLUMNS if c in pq.read_schema(table_file(self.folder, "steps")).names]
        self._timeline = self._read(TIMELINE_COLUMNS, None)
        per_agent = self._timeline.group_by("agent").aggregate([("step", "max")]).column("step_max").to_numpy()
        n = len(self.meta.agent_names)
        self._complete = 0 if len(per_agent) < n else int(per_agent.min()) + 1
        self._until = int(per_agent.max()) + 1 if len(per_agent) else 0

    def _read(self, columns: list[str], filters: Any) -> pa.Table:
        """`columns` of the rows that pass `filters`; a column the trace lacks (an older one) reads as nulls."""
        wanted = [c for c in columns if c in self._columns]
        table = pq.read_table(table_file(self.folder, "steps"), columns=wanted, filters=filters)
        for c in columns:
            if c not in table.column_names:
                table = table.append_column(c, pa.nulls(len(table)))
        return table.select(columns)

    def describe(self) -> dict[str, Any]:
        return describe(self.meta, self._until, live=False)

    def complete(self) -> int:
        return self._complete

    def window(self, first: int, last: int) -> pa.Table:
        return self._read(STEP_COLUMNS, [("step", ">=", first), ("step", "<", last)])

    def timeline(self, since: int = 0) -> pa.Table:
        """The whole run's: read once, it serves every window."""
        return self._timeline

    def before(self, since: int) -> tuple[int, int]:
        return (0, 0)  # `timeline` left nothing out

    def history(self, agent: int) -> pd.DataFrame:
        return self._read(STEP_COLUMNS, [("agent", "==", agent)]).to_pandas()

    def calls(self, agent: int) -> pd.DataFrame:
        return pq.read_table(table_file(self.folder, "calls"), filters=[("agent", "==", agent)]).to_pandas()

    def conversations(self, agent: int) -> pd.DataFrame:
        frame = read_table(self.folder, "conversations")
        return frame[[agent in list(p) for p in frame["participants"]]] if len(frame) else frame

    def speculation(self, since: int) -> dict[str, Any] | None:
        return None  # a finished run: its frames say it all


def _add_counts(counts: np.ndarray, steps: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """`counts` (per step number) plus `weights` (1 each by default) summed by `steps`, grown as needed."""
    more = np.bincount(steps, weights).astype(np.int64)
    if len(more) > len(counts):
        counts = np.concatenate([counts, np.zeros(len(more) - len(counts), np.int64)])
    counts[: len(more)] += more
    return counts


class LiveSource:
    """A run going on now, read from its trace recorder. The run does nothing for the view: it is not a listener;
    the recorder keeps (`share`) the Arrow row groups and pieces it builds anyway, and the server's threads, when a
    page asks, take what was recorded since they last looked (`_catch_up`): those tables as they are, and the
    steps not yet in a piece built into one, which the recorder keeps (no step is built twice). Rows stay in Arrow
    chunks, never record objects of the view's own, so a long run gives the cyclic collector nothing more to
    scan; a window or an agent's history is filtered in Arrow and only its rows become a DataFrame.

    `metropolis bench view` measures what watching costs: nothing per step, and the server's thread when a page
    looks."""

    def __init__(self, recorder: TraceRecorder, until: int) -> None:
        if recorder.meta is None:
            raise ValueError("a live view needs a recorder made with TraceRecorder.for_simulation")
        recorder.share()
        self.meta = recorder.meta
        self.until = until
        self.recorder = recorder
        self.units = recorder.units
        self._lock = threading.Lock()  # readers (the server's threads) one at a time
        self._rows = 0  # steps indexed
        self._chunks: list[pa.Table] = []  # STEP_COLUMNS, in recording order
        self._ranges: list[tuple[int, int]] = []  # each chunk's lowest and highest step: a window skips the rest
        self._per_step = np.zeros(0, np.int64)  # steps committed per step number
        self._spec_per_step = np.zeros(0, np.int64)  # of those, steps run ahead of their blockers
        self._undo_per_step = np.zeros(0, np.int64)  # runs undone before they committed
        self._complete = 0

    @classmethod
    def attach(cls, sim: Any, recorder: TraceRecorder) -> LiveSource:
        """A live source of `sim` (a Simulation) recorded by `recorder`: attach before the run starts."""
        if recorder not in sim.listeners:
            raise ValueError("attach the trace recorder to the simulation before its live view")
        return cls(recorder, sim.until)

    def _catch_up(self) -> None:
        """Index the steps recorded since the last reader looked. Called by every reader, under the lock."""
        tables = [t.select(STEP_COLUMNS) for t in self.recorder.rows_since(self._rows) if len(t)]
        if not tables:
            return
        new = pa.concat_tables(tables)
        steps = new.column("step").to_numpy()
        self._rows += len(new)
        self._chunks.append(new)
        self._ranges.append((int(steps.min()), int(steps.max())))
        speculative = new.column("speculative").fill_null(False).to_numpy(zero_copy_only=False).astype(np.int64)
        undone = new.column("undone").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        self._per_step = _add_counts(self._per_step, steps)
        self._spec_per_step = _add_counts(self._spec_per_step, steps, speculative)
        self._undo_per_step = _add_counts(self._undo_per_step, steps, undone)
        agents = len(self.meta.agent_names)
        while self._complete < len(self._per_step) and self._per_step[self._complete] == agents:
            self._complete += 1
        if len(self._chunks) > MAX_CHUNKS:  # one per look: join them now and then, so a window scans few
            self._chunks = [pa.concat_tables(self._chunks).combine_chunks()]
            self._ranges = [(min(r[0] for r in self._ranges), max(r[1] for r in self._ranges))]

    def _rows_where(
        self, keep: Any, first: int = 0, last: int = sys.maxsize, columns: list[str] = STEP_COLUMNS
    ) -> pa.Table:
        """`columns` of the rows of the chunks that hold steps in [first, last), where `keep(chunk)` (an Arrow
        mask) is true."""
        chunks = zip(self._chunks, self._ranges, strict=True)
        parts = [c.select(columns).filter(keep(c)) for c, (lo, hi) in chunks if hi >= first and lo < last]
        return pa.concat_tables(parts) if parts else STEPS_SCHEMA.empty_table().select(columns)

    def describe(self) -> dict[str, Any]:
        return describe(self.meta, self.until, live=True)

    def complete(self) -> int:
        with self._lock:
            self._catch_up()
            return self._complete

    def window(self, first: int, last: int) -> pa.Table:
        with self._lock:
            self._catch_up()
            keep = lambda c: pc.and_(pc.greater_equal(c["step"], first), pc.less(c["step"], last))  # noqa: E731
            return self._rows_where(keep, first, last)

    def timeline(self, since: int = 0) -> pa.Table:
        """The steps from `since` on: what the pictures of frames `since` and later need (`Timeline`)."""
        with self._lock:
            self._catch_up()
            return self._rows_where(lambda c: pc.greater_equal(c["step"], since), since, columns=TIMELINE_COLUMNS)

    def before(self, since: int) -> tuple[int, int]:
        """The steps before `since` that ran ahead of their blockers, and the runs of them undone."""
        with self._lock:
            return int(self._spec_per_step[:since].sum()), int(self._undo_per_step[:since].sum())

    def history(self, agent: int) -> pd.DataFrame:
        with self._lock:
            self._catch_up()
            return self._rows_where(lambda c: pc.equal(c["agent"], agent)).to_pandas()

    def calls(self, agent: int) -> pd.DataFrame:
        return self.recorder.calls_of(agent).to_pandas()

    def conversations(self, agent: int) -> pd.DataFrame:
        return pd.DataFrame({"start": np.array([], dtype=int)})

    def speculation(self, since: int) -> dict[str, Any] | None:
        """The speculative picture now: the steps running (or held) ahead of their blockers, the undone
        member-steps numbered above `since` (as [number, agent, step]), and the counts so far. None: no
        speculation in this run."""
        units = self.units
        if units is None or not (units.speculated or self.meta.scheduler == "speculative"):
            return None
        ahead = sorted(units.ahead.copy())[:MAX_AHEAD]
        recent = [list(r) for r in list(units.recent) if r[0] > since]
        with self._lock:
            self._catch_up()
            committed, speculative = self._rows, int(self._spec_per_step.sum())
        return {
            "ahead": [list(k) for k in ahead],
            "rollbacks": recent,
            "seq": units.rolled_back,
            "counts": {"committed": committed, "speculative": speculative, "undone": units.rolled_back},
        }
