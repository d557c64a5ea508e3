"""Where the viewer's steps come from: a finished trace on disk (read in windows, with Parquet filters, so a
1,000-agent day scrubs without loading every row), or a run going on now (a listener that keeps the records).

Both answer the same questions: the run's description, how many frames are complete (a frame k is complete
when every agent has committed step k), the step rows of a window of frames, the run's timeline (every step's
time span, for the scheduler layer) and one agent's calls and conversations.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.trace.recorder import calls_batch, simulation_meta, steps_batch
from metropolis.trace.schema import TraceMeta
from metropolis.trace.store import META_FILE, read_table, table_file
from metropolis.trace.units import Dispatched, UnitLog

STEP_COLUMNS = [
    "agent", "step", "x", "y", "action", "start", "end", "unit", "gvt", "speculative", "undone", "llm_calls",
    "partners", "events",
]  # fmt: skip
TIMELINE_COLUMNS = ["agent", "step", "x", "y", "start", "end", "unit", "speculative", "undone"]
TIMELINE_TYPES: dict[str, Any] = {
    "agent": np.int64, "step": np.int64, "x": np.int64, "y": np.int64, "start": np.float64, "end": np.float64,
    "unit": np.float64, "speculative": bool, "undone": np.int64,
}  # fmt: skip
MAX_AHEAD = 2_000  # speculative steps a live summary lists (its counts say how many in all)


class StepSource(Protocol):
    def describe(self) -> dict[str, Any]: ...

    def complete(self) -> int: ...

    def window(self, first: int, last: int) -> pd.DataFrame: ...

    def timeline(self) -> pd.DataFrame: ...

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
        per_agent = self._timeline.groupby("agent")["step"].max()
        n = len(self.meta.agent_names)
        self._complete = 0 if len(per_agent) < n else int(per_agent.min()) + 1
        self._until = int(per_agent.max()) + 1 if len(per_agent) else 0

    def _read(self, columns: list[str], filters: Any) -> pd.DataFrame:
        wanted = [c for c in columns if c in self._columns or c not in STEP_COLUMNS]
        frame = pq.read_table(table_file(self.folder, "steps"), columns=wanted, filters=filters).to_pandas()
        for c in columns:
            if c not in frame.columns:
                frame[c] = None
        return frame

    def describe(self) -> dict[str, Any]:
        return describe(self.meta, self._until, live=False)

    def complete(self) -> int:
        return self._complete

    def window(self, first: int, last: int) -> pd.DataFrame:
        return self._read(STEP_COLUMNS, [("step", ">=", first), ("step", "<", last)])

    def timeline(self) -> pd.DataFrame:
        return self._timeline

    def history(self, agent: int) -> pd.DataFrame:
        return self._read(STEP_COLUMNS, [("agent", "==", agent)])

    def calls(self, agent: int) -> pd.DataFrame:
        return pq.read_table(table_file(self.folder, "calls"), filters=[("agent", "==", agent)]).to_pandas()

    def conversations(self, agent: int) -> pd.DataFrame:
        frame = read_table(self.folder, "conversations")
        return frame[[agent in list(p) for p in frame["participants"]]] if len(frame) else frame

    def speculation(self, since: int) -> dict[str, Any] | None:
        return None  # a finished run: its frames say it all


class LiveSource:
    """A run going on now: a listener (and dispatcher observer) that keeps every record. The run pays one list
    append per record (atomic under the GIL); the server's threads, when a page asks, index what arrived since
    they last looked (`_catch_up`, under a lock of their own), so nobody watching costs the run next to nothing
    and a reader always sees a consistent prefix."""

    def __init__(self, meta: TraceMeta, until: int, units: UnitLog | None = None) -> None:
        self.meta = meta
        self.until = until
        self.units = units
        # Appended by the run (how each step was dispatched first, then the step), read by the server; two lists
        # rather than one of pairs: a pair per record would be one more object for the collector to track.
        self._arrived_seen: list[Dispatched | None] = []
        self._arrived: list[StepRecord] = []
        self._indexed = 0  # how many of them the server has indexed
        self._steps: list[StepRecord] = []
        self._calls: list[CallRecord] = []
        self._by_step: dict[int, list[int]] = {}
        self._per_step: dict[int, int] = {}
        self._complete = 0
        self._lock = threading.Lock()
        self._scheduled: dict[tuple[int, int], Dispatched] = {}
        self._speculative = 0  # committed steps that ran ahead of their blockers
        # The timeline's columns: rows indexed since the last `timeline()` wait in `_spans`, which then appends
        # them to `_arrays`, so each look at a long run converts only its new rows (the scheduler layer asks once
        # a live tick, and turning every record into a row again would cost the run more each time).
        self._spans: dict[str, list[Any]] = {c: [] for c in TIMELINE_COLUMNS}
        self._arrays: dict[str, np.ndarray] = {c: np.zeros(0, TIMELINE_TYPES[c]) for c in TIMELINE_COLUMNS}

    @classmethod
    def attach(cls, sim: Any, run_id: str | None = None) -> LiveSource:
        """A live source listening to `sim` (a Simulation): append it before the run starts."""
        meta = simulation_meta(sim, run_id)
        live = cls(meta, sim.until, UnitLog.attach(sim))
        sim.listeners.append(live)
        return live

    def on_step(self, record: StepRecord) -> None:
        self._arrived_seen.append(None if self.units is None else self.units.lookup(record.agent, record.step))
        self._arrived.append(record)

    def on_call(self, record: CallRecord) -> None:
        self._calls.append(record)

    def _catch_up(self) -> None:
        """Index the records that arrived since the last reader looked: by step, their scheduler columns, the
        timeline's columns, the frames now complete. Called by every reader, under the lock."""
        n = len(self._arrived)
        agents = len(self.meta.agent_names)
        spans, per_step = self._spans, self._per_step
        fresh = zip(self._arrived[self._indexed : n], self._arrived_seen[self._indexed : n], strict=True)
        for record, seen in fresh:
            if seen is not None:
                self._scheduled[(record.agent, record.step)] = seen
                self._speculative += seen.speculative
            self._by_step.setdefault(record.step, []).append(len(self._steps))
            self._steps.append(record)
            spans["agent"].append(record.agent)
            spans["step"].append(record.step)
            spans["x"].append(record.state.pos[0])
            spans["y"].append(record.state.pos[1])
            spans["start"].append(record.start)
            spans["end"].append(record.end)
            spans["unit"].append(None if seen is None else seen.unit)
            spans["speculative"].append(seen is not None and seen.speculative)
            spans["undone"].append(0 if seen is None else seen.undone)
            per_step[record.step] = per_step.get(record.step, 0) + 1
        self._indexed = n
        while per_step.get(self._complete, 0) == agents:
            self._complete += 1

    def describe(self) -> dict[str, Any]:
        return describe(self.meta, self.until, live=True)

    def complete(self) -> int:
        with self._lock:
            self._catch_up()
            return self._complete

    def _frame(self, rows: list[StepRecord]) -> pd.DataFrame:
        keys = [(r.agent, r.step) for r in rows]
        scheduled = {k: self._scheduled[k] for k in keys if k in self._scheduled}
        return steps_batch(rows, scheduled).to_pandas()[STEP_COLUMNS]

    def window(self, first: int, last: int) -> pd.DataFrame:
        with self._lock:
            self._catch_up()
            rows = [self._steps[i] for s in range(first, last) for i in self._by_step.get(s, ())]
            return self._frame(rows)

    def timeline(self) -> pd.DataFrame:
        with self._lock:
            self._catch_up()
            arrays = self._arrays
            if self._spans["agent"]:
                for c, values in self._spans.items():
                    arrays[c] = np.concatenate([arrays[c], np.asarray(values, dtype=TIMELINE_TYPES[c])])
                    values.clear()
            frame = pd.DataFrame(dict(arrays))
        frame["unit"] = frame["unit"].astype("Int64")  # NaN (a dispatch the log never saw) as null
        return frame[TIMELINE_COLUMNS]

    def history(self, agent: int) -> pd.DataFrame:
        with self._lock:
            self._catch_up()
            return self._frame([r for r in self._steps if r.agent == agent])

    def calls(self, agent: int) -> pd.DataFrame:
        mine = [c for c in list(self._calls) if c.agent == agent]
        return calls_batch(mine).to_pandas()

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
            committed, speculative = len(self._steps), self._speculative
        return {
            "ahead": [list(k) for k in ahead],
            "rollbacks": recent,
            "seq": units.rolled_back,
            "counts": {"committed": committed, "speculative": speculative, "undone": units.rolled_back},
        }
