"""The viewer's data: trace columns for the scheduler layer, frames from a trace and from a live run, the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from metropolis.agents import WalkerConfig
from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.runtime import VirtualRuntime
from metropolis.trace import Trace, TraceRecorder
from metropolis.viewer import LiveSource, TraceSource, make_app
from metropolis.viewer.frames import Timeline
from metropolis.viewer.town import town_map
from tests.scenarios import walker_sim


def _run(tmp_path: Path, live: bool = False) -> tuple[Path, LiveSource | None]:
    sim = walker_sim(6, "metropolis", seed=3, size=12, steps=12, config=WalkerConfig(call_prob=0.5))
    recorder = TraceRecorder.for_simulation(sim, tmp_path / "trace", run_id="t")
    sim.listeners.append(recorder)
    source = LiveSource.attach(sim, recorder) if live else None
    env = Environment()
    VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset("l4-llama3-8b")))).run()
    recorder.close()
    return tmp_path, source


def test_steps_carry_their_unit_and_gvt(tmp_path: Path) -> None:
    folder, _ = _run(tmp_path)
    steps = Trace.read(folder / "trace").steps
    assert steps["unit"].notna().all() and steps["gvt"].notna().all()
    assert (steps["gvt"] <= steps["step"]).all()  # nobody runs a step below the slowest agent
    per_unit = steps.groupby("unit")["step"].nunique()
    assert (per_unit == 1).all()  # a unit is one cluster's one step


def test_frames_put_each_agent_where_the_trace_says(tmp_path: Path) -> None:
    folder, _ = _run(tmp_path)
    source = TraceSource(folder)
    client = TestClient(make_app(source, town_map(None, (20, 20))))
    assert client.get("/api/run").json()["complete"] == 12
    body = client.get("/api/frames", params={"first": 5, "last": 8}).json()
    steps = Trace.read(folder / "trace").steps
    for frame in body["frames"]:
        at = steps[steps["step"] == frame["step"]].sort_values("agent")
        assert frame["pos"] == [[int(x), int(y)] for x, y in zip(at["x"], at["y"], strict=True)]
        sched = frame["sched"]
        assert min(sched["steps"]) == sched["gvt"] > frame["step"]


def test_the_scheduler_picture_follows_the_rules() -> None:
    import pandas as pd

    # Agent 0 is at step 3, agent 1 (near it) at step 1, agent 2 (far) at step 1: 0 waits on 1 only.
    rows = [(a, s, x, 0, float(s), float(s) + 0.5, a * 10 + s) for a, n, x in ((0, 3, 0), (1, 1, 3), (2, 1, 50))
            for s in range(n)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["agent", "step", "x", "y", "start", "end", "unit"])
    picture = Timeline.of(frame, 3).at(10.0, until=5, R=4.0, V=1.0)
    assert picture["steps"] == [3, 1, 1] and picture["gvt"] == 1
    assert picture["blocks"] == [[1, 0]]


def test_a_live_run_ends_with_the_frames_of_its_trace(tmp_path: Path) -> None:
    folder, live = _run(tmp_path, live=True)
    assert live is not None and live.complete() == 12
    recorded = TraceSource(folder).window(0, 12).to_pandas().sort_values(["step", "agent"]).reset_index(drop=True)
    kept = live.window(0, 12).to_pandas().sort_values(["step", "agent"]).reset_index(drop=True)
    cols = ["agent", "step", "x", "y", "unit", "gvt"]
    assert kept[cols].astype(int).equals(recorded[cols].astype(int))


class _Looker:
    """A listener after the recorder that looks at the live view every few steps, as a page would, and notes what
    it saw against what the run had committed then."""

    def __init__(self, sim: Any, live: LiveSource, every: int) -> None:
        self.live, self.every, self.seen = live, every, 0
        self.steps = [0] * len(sim.agents)  # steps each agent has committed (the recorder heard them first)
        self.looks: list[tuple[int, int, int]] = []  # (complete, the run's frames complete, rows in the window)

    def on_step(self, record: Any) -> None:
        self.seen += 1
        self.steps[record.agent] += 1
        if self.seen % self.every == 0:
            done = self.live.complete()
            frames = min(self.steps)
            window = self.live.window(max(0, done - 2), done)
            self.looks.append((done, frames, len(window)))

    def on_call(self, record: Any) -> None:
        pass


@pytest.mark.parametrize(("chunk_rows", "piece_rows"), [(5, 3), (23, 4), (65_536, 3), (65_536, 2_048)])
def test_a_live_view_read_while_the_run_records_sees_each_step_once(
    tmp_path: Path, chunk_rows: int, piece_rows: int
) -> None:
    """Looked at every 7 steps, with the recorder flushing row groups every 5 or 23 steps or never, and building
    pieces every 3 or 4 steps or never: every look counts exactly the frames the run had completed, and at the
    end the view holds the trace's rows, each once."""
    sim = walker_sim(6, "metropolis", seed=3, size=12, steps=12, config=WalkerConfig(call_prob=0.5))
    recorder = TraceRecorder.for_simulation(sim, tmp_path / "trace", chunk_rows=chunk_rows)
    recorder.share(piece_rows)
    sim.listeners.append(recorder)
    live = LiveSource.attach(sim, recorder)
    looker = _Looker(sim, live, 7)
    sim.listeners.append(looker)
    env = Environment()
    VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset("l4-llama3-8b")))).run()
    recorder.close()
    assert len(looker.looks) == 72 // 7
    for done, frames, rows in looker.looks:
        assert done == frames and rows == 6 * min(done, 2)
    assert [d for d, _, _ in looker.looks] == sorted(d for d, _, _ in looker.looks) and live.complete() == 12
    steps = Trace.read(tmp_path / "trace").steps.sort_values(["agent", "step"]).reset_index(drop=True)
    kept = live.history(2).reset_index(drop=True)
    assert len(live.window(0, 12)) == len(steps) == 72
    assert kept[["step", "x", "y"]].equals(steps[steps["agent"] == 2][["step", "x", "y"]].reset_index(drop=True))
    calls = Trace.read(tmp_path / "trace").calls
    assert len(live.calls(2)) == int((calls["agent"] == 2).sum()) > 0
    assert len(live.timeline()) == 72
    alone, _ = _run(tmp_path / "alone")  # the same run, recorded without a live view: the same trace
    pd.testing.assert_frame_equal(Trace.read(alone / "trace").steps, Trace.read(tmp_path / "trace").steps)


def test_an_agent_shows_its_calls(tmp_path: Path) -> None:
    folder, _ = _run(tmp_path)
    client = TestClient(make_app(TraceSource(folder), town_map(None, (20, 20))))
    calls = Trace.read(folder / "trace").calls
    agent = int(calls["agent"].iloc[0])
    body = client.get(f"/api/agent/{agent}").json()
    assert len(body["calls"]) == int((calls["agent"] == agent).sum())
    assert client.get("/api/agent/99").status_code == 404


def test_a_bad_run_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        TraceSource(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        TraceSource(tmp_path / "nope")


def test_who_blocks_whom_matches_every_pair() -> None:
    """The k-d tree's answer equals the all-pairs rule on a random town of 300 agents."""
    import numpy as np

    from metropolis.scheduling.rules import block_radius
    from metropolis.viewer.frames import _blocks

    rng = np.random.default_rng(7)
    n = 300
    steps, x, y = rng.integers(0, 40, n), rng.integers(0, 400, n), rng.integers(0, 300, n)
    waiting = rng.random(n) < 0.6
    pairs, count = _blocks(steps, waiting, x, y, 4.0, 1.0)
    want = [
        [j, i]
        for i in range(n)
        for j in range(n)
        if waiting[i] and steps[i] > steps[j] and np.hypot(x[i] - x[j], y[i] - y[j]) <= block_radius(
            int(steps[i] - steps[j]), 4.0, 1.0)
    ]  # fmt: skip
    assert 0 < len(want) < 2_000 and pairs == want and count == len(want)


def test_frames_say_who_talks_to_whom(tmp_path: Path) -> None:
    """A walker writes into a neighbour (`ctx.partner`): the frame pairs them, and both agents' details list the
    conversation with the other."""
    folder, _ = _run(tmp_path)
    steps = Trace.read(folder / "trace").steps
    talking = steps[steps["partners"].map(len) > 0]
    assert len(talking), "the walkers of this scenario talk"
    row = talking.iloc[0]
    a, b = int(row["agent"]), int(row["partners"][0])
    client = TestClient(make_app(TraceSource(folder), town_map(None, (20, 20))))
    frame = client.get("/api/frames", params={"first": int(row["step"]), "last": int(row["step"]) + 1}).json()
    assert [min(a, b), max(a, b)] in frame["frames"][0]["talks"]
    for me, other in ((a, b), (b, a)):
        talks = client.get(f"/api/agent/{me}").json()["conversations"]
        assert any(c["start"] <= row["step"] <= c["end"] and other in c["with"] for c in talks) or me == b


def test_the_live_view_shows_the_same_conversations_as_the_replay(tmp_path: Path) -> None:
    from metropolis.viewer.frames import frames

    folder, live = _run(tmp_path, live=True)
    assert live is not None
    recorded = TraceSource(folder)
    info = recorded.describe()
    want = frames(recorded.window(0, 12), 0, 12, 6, None, info)["frames"]
    got = frames(live.window(0, 12), 0, 12, 6, None, info)["frames"]
    assert [f["talks"] for f in got] == [f["talks"] for f in want]
    assert any(f["talks"] for f in want)
    client = TestClient(make_app(live, town_map(None, (20, 20))))
    replay = TestClient(make_app(recorded, town_map(None, (20, 20))))
    for agent in range(6):
        assert (
            client.get(f"/api/agent/{agent}").json()["conversations"]
            == replay.get(f"/api/agent/{agent}").json()["conversations"]
        )


def test_the_live_timeline_is_the_traces(tmp_path: Path) -> None:
    folder, live = _run(tmp_path, live=True)
    assert live is not None
    order = ["agent", "step"]
    want = TraceSource(folder).timeline().to_pandas().sort_values(order).reset_index(drop=True)
    got = live.timeline().to_pandas().sort_values(order).reset_index(drop=True)
    for column in want.columns:
        assert got[column].astype(float).tolist() == want[column].astype(float).tolist(), column
