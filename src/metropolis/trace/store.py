"""A trace on disk is a folder: `calls.parquet`, `steps.parquet`, `meta.json` (and `conversations.parquet`
when the source has conversations); a run still going (or killed) has `calls/` and `steps/` folders of part
files instead (see `trace.parts`), read the same way. In memory it is a `Trace` of pandas DataFrames, so
analysis is plain pandas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metropolis.trace.parts import read_parts
from metropolis.trace.schema import OPTIONAL_COLUMNS, TABLES, TraceMeta

META_FILE = "meta.json"
OPTIONAL_TABLES = ("conversations",)


def table_file(folder: Path, table: str) -> Path:
    return folder / f"{table}.parquet"


def empty_frame(table: str) -> pd.DataFrame:
    return TABLES[table].empty_table().to_pandas()


def with_optional_columns(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the table's optional columns it lacks added, all null."""
    absent = [name for name in OPTIONAL_COLUMNS.get(table, ()) if name not in frame.columns]
    return frame.assign(**{name: None for name in absent}) if absent else frame


def to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table of the trace schema; a missing or mistyped column is a ValueError."""
    schema = TABLES[table]
    frame = with_optional_columns(table, frame)
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ValueError(f"{table} table: missing columns {', '.join(missing)}")
    try:
        return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(f"{table} table does not fit the trace schema: {error}") from None


def read_table(folder: Path, table: str) -> pd.DataFrame:
    """One table: its file, or (a run still going, or killed) the sealed part files of its folder."""
    path = table_file(folder, table)
    parts = folder / table
    if not path.exists() and parts.is_dir():
        path = parts
    if not path.exists():
        if table in OPTIONAL_TABLES:
            return empty_frame(table)
        raise FileNotFoundError(f"{folder} is not a trace: {path.name} is missing")
    try:
        data = read_parts(path, table) if path.is_dir() else pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None
    optional = OPTIONAL_COLUMNS.get(table, ())
    missing = [name for name in TABLES[table].names if name not in data.schema.names and name not in optional]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    return with_optional_columns(table, data.to_pandas())


@dataclass(slots=True)
class Trace:
    """One recorded or imported run: its LLM calls, its agent-steps and (if known) its conversations."""

    meta: TraceMeta
    calls: pd.DataFrame
    steps: pd.DataFrame
    conversations: pd.DataFrame

    @classmethod
    def of(
        cls,
        meta: TraceMeta,
        calls: pd.DataFrame | None = None,
        steps: pd.DataFrame | None = None,
        conversations: pd.DataFrame | None = None,
    ) -> Trace:
        """A trace whose missing tables are empty, with the right columns."""
        return cls(
            meta,
            empty_frame("calls") if calls is None else calls,
            empty_frame("steps") if steps is None else steps,
            empty_frame("conversations") if conversations is None else conversations,
        )

    @classmethod
    def read(cls, path: Path | str) -> Trace:
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no trace folder at {folder}")
        meta_path = folder / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{folder} is not a trace: {META_FILE} is missing")
        meta = TraceMeta.from_json(meta_path.read_text(encoding="utf-8"), meta_path)
        return cls(meta, *(read_table(folder, table) for table in TABLES))

    def write(self, path: Path | str) -> Path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for table, frame in self.tables().items():
            if table in OPTIONAL_TABLES and frame.empty:
                table_file(folder, table).unlink(missing_ok=True)
                continue
            pq.write_table(to_arrow(table, frame), table_file(folder, table), compression="zstd")
        (folder / META_FILE).write_text(self.meta.to_json() + "\n", encoding="utf-8")
        return folder

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"calls": self.calls, "steps": self.steps, "conversations": self.conversations}

    # -- accessors -------------------------------------------------------------------------------------------

    @property
    def agent_names(self) -> list[str]:
        return self.meta.agent_names

    @property
    def num_steps(self) -> int:
        """Steps covered: one past the highest step of any call or agent-step."""
        highest = [int(t["step"].max()) for t in (self.calls, self.steps) if not t.empty]
        return max(highest) + 1 if highest else 0

    def agent_id(self, agent: int | str) -> int:
        """The id of an agent given by id or by name."""
        names = self.meta.agent_names
        if isinstance(agent, str):
            if agent not in names:
                raise ValueError(f"no agent named {agent!r} in this trace; agents: {', '.join(names)}")
            return names.index(agent)
        if not 0 <= agent < len(names):
            raise ValueError(f"no agent {agent} in this trace; ids run 0..{len(names) - 1}")
        return agent

    def calls_of(self, agent: int | str) -> pd.DataFrame:
        calls = self.calls
        return calls[calls["agent"] == self.agent_id(agent)].sort_values(["step", "start"], kind="stable")

    def steps_of(self, agent: int | str) -> pd.DataFrame:
        steps = self.steps
        return steps[steps["agent"] == self.agent_id(agent)].sort_values("step", kind="stable")

    def positions(self, agent: int | str) -> np.ndarray:
        """The agent's (x, y) per recorded step, as an (n, 2) integer array in step order."""
        return self.steps_of(agent)[["x", "y"]].to_numpy(dtype=np.int64)

    def conversations_of(self, agent: int | str) -> pd.DataFrame:
        me = self.agent_id(agent)
        conv = self.conversations
        return conv[np.array([me in list(p) for p in conv["participants"]], dtype=bool)]
