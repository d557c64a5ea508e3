"""The trace folder: plain frames round-trip through the typed schema; broken folders are named errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from metropolis.trace.schema import TraceMeta
from metropolis.trace.store import Trace


def steps_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agent": [0, 1],
            "name": ["a", "b"],
            "step": [0, 0],
            "x": [1, 2],
            "y": [3, 4],
            "action": ["idle", "idle"],
            "events": [["hi"], None],
            "observed": [[1], []],
            "partners": [[], []],
            "llm_calls": [None, 2],
            "start": [0.0, None],
            "end": [1.0, None],
        }
    )


def test_plain_frames_round_trip_with_dictionary_strings(tmp_path: Path) -> None:
    trace = Trace.of(TraceMeta("test", ["a", "b"], seed=4, extra={"k": [1]}), steps=steps_frame())
    folder = trace.write(tmp_path / "t")
    assert sorted(p.name for p in folder.iterdir()) == ["calls.parquet", "meta.json", "steps.parquet"]
    schema = pq.read_schema(folder / "steps.parquet")
    assert str(schema.field("action").type) == "dictionary<values=string, indices=int32, ordered=0>"
    back = Trace.read(folder)
    assert back.meta == trace.meta
    assert back.steps["name"].astype(str).tolist() == ["a", "b"]
    assert [list(v) for v in back.steps["observed"]] == [[1], []]
    assert back.steps["llm_calls"].isna().tolist() == [True, False] and back.steps["llm_calls"].iloc[1] == 2
    assert back.calls.empty and list(back.calls.columns)[:3] == ["agent", "name", "step"]
    assert back.num_steps == 1 and back.agent_id("b") == 1


def test_wrong_frames_and_agents_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="steps table: missing columns partners"):
        Trace.of(TraceMeta("t", []), steps=steps_frame().drop(columns="partners")).write(tmp_path / "t")
    wrong = steps_frame().assign(x=["left", "right"])
    with pytest.raises(ValueError, match="steps table does not fit the trace schema"):
        Trace.of(TraceMeta("t", []), steps=wrong).write(tmp_path / "t")
    trace = Trace.of(TraceMeta("t", ["a"]))
    with pytest.raises(ValueError, match="no agent named 'z' in this trace; agents: a"):
        trace.calls_of("z")
    with pytest.raises(ValueError, match=r"no agent 3 in this trace; ids run 0..0"):
        trace.steps_of(3)


def test_broken_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no trace folder"):
        Trace.read(tmp_path / "none")
    folder = Trace.of(TraceMeta("t", ["a"])).write(tmp_path / "t")
    (folder / "meta.json").write_text(json.dumps({"source": "t", "agent_names": [], "colour": 1}))
    with pytest.raises(ValueError, match=r"meta.json: unknown fields colour; known: "):
        Trace.read(folder)
    (folder / "meta.json").write_text('{"source": ')
    with pytest.raises(ValueError, match=r"meta.json: not valid JSON \(Expecting value at line 1\)"):
        Trace.read(folder)
    (folder / "meta.json").write_text(json.dumps({"source": "t"}))
    with pytest.raises(ValueError, match="missing field 'agent_names'"):
        Trace.read(folder)
    (folder / "meta.json").write_text(TraceMeta("t", ["a"]).to_json())
    (folder / "steps.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match=r"steps\.parquet: not a readable Parquet file"):
        Trace.read(folder)
    (folder / "steps.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"steps\.parquet is missing"):
        Trace.read(folder)
    with pytest.raises(ValueError, match="seconds_per_step must be > 0"):
        TraceMeta("t", [], seconds_per_step=0)


def test_steps_written_before_plans_read_with_null_plans(tmp_path: Path) -> None:
    folder = Trace.of(TraceMeta("test", ["a", "b"]), steps=steps_frame()).write(tmp_path / "t")
    table = pq.read_table(folder / "steps.parquet")
    assert table.column("plan_next").null_count == 2  # a writer that does not know plans leaves them null
    pq.write_table(table.drop_columns(["plan_next"]), folder / "steps.parquet")  # as files were before plans
    assert Trace.read(folder).steps["plan_next"].isna().tolist() == [True, True]
