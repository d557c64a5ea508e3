"""Speculative vs committed steps in the trace and in the viewer: which steps ran ahead of their blockers, how
many runs of each were undone, the same in a replay and live, and the run itself unchanged by watching it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from metropolis.agents import WalkerConfig
from metropolis.engine import Simulation
from metropolis.trace import Trace, TraceRecorder
from metropolis.trace.units import UnitLog
from metropolis.viewer import LiveSource, TraceSource, make_app
from metropolis.viewer.frames import Timeline, frames
from metropolis.viewer.town import town_map
from tests.scenarios import outcome, run_shuffled, walker_sim
from tests.test_speculative import bold, run_eager

CROWDED = dict(n=30, size=12, steps=10, R=2.0, V=1.0, config=WalkerConfig(0.9, 0.4, 0.0))


def _speculative_run(tmp_path: Path, seed: int, eager: bool) -> tuple[Simulation, Path, LiveSource, UnitLog]:
    sim = walker_sim(scheduler=bold(), seed=seed, **CROWDED)  # type: ignore[arg-type]
    recorder = TraceRecorder.for_simulation(sim, tmp_path / "trace", run_id="spec")
    sim.listeners.append(recorder)
    live = LiveSource.attach(sim, recorder)
    (run_eager if eager else run_shuffled)(sim, random.Random(seed))
    recorder.close()
    assert recorder.units is not None
    return sim, tmp_path, live, recorder.units


def _runs(tmp_path: Path) -> list[tuple[Simulation, pd.DataFrame, LiveSource, UnitLog, Path]]:
    out = []
    for seed in range(4):
        for eager in (True, False):
            sim, folder, live, log = _speculative_run(tmp_path / f"{seed}-{eager}", seed, eager)
            out.append((sim, Trace.read(folder / "trace").steps, live, log, folder))
    return out


def test_the_trace_says_which_steps_ran_ahead_and_how_often_they_were_undone(tmp_path: Path) -> None:
    speculative = undone = 0
    for sim, steps, _, log, _ in _runs(tmp_path):
        serial = walker_sim(scheduler="serial", seed=sim.seed, **CROWDED)  # type: ignore[arg-type]
        run_shuffled(serial, random.Random(sim.seed))
        assert outcome(sim) == outcome(serial)  # watching changed nothing
        assert steps["speculative"].notna().all() and steps["undone"].notna().all()
        # Every step dispatched ahead either committed (speculative) or was undone, and an undone step commits
        # once, later, carrying the count of its undone runs.
        assert int(steps["speculative"].sum()) + log.rolled_back == log.speculated
        assert int(steps["undone"].sum()) == log.rolled_back
        assert (steps.groupby("unit")["step"].nunique() == 1).all()  # a unit is still one step
        assert (steps.groupby("unit")["speculative"].nunique() == 1).all()  # ... run one way
        assert not log.ahead and not log.undone  # nothing left over
        assert sim.speculation is not None and sim.speculation.stats.rollbacks <= log.rolled_back
        speculative += int(steps["speculative"].sum())
        undone += int(steps["undone"].sum())
    assert speculative > 0 and undone > 0


def test_other_policies_run_nothing_ahead(tmp_path: Path) -> None:
    sim = walker_sim(scheduler="metropolis", seed=1, **CROWDED)  # type: ignore[arg-type]
    recorder = TraceRecorder.for_simulation(sim, tmp_path / "trace")
    sim.listeners.append(recorder)
    run_shuffled(sim, random.Random(1))
    recorder.close()
    steps = Trace.read(tmp_path / "trace").steps
    assert not steps["speculative"].any() and (steps["undone"] == 0).all()


def test_frames_show_the_speculative_steps_where_the_trace_says(tmp_path: Path) -> None:
    for _, steps, live, _, folder in _runs(tmp_path):
        source = TraceSource(folder)
        info = source.describe()
        for got in (
            frames(source.window(0, 10), 0, 10, 30, None, info),
            frames(live.window(0, 10), 0, 10, 30, None, info),
        ):
            for frame in got["frames"]:
                at = steps[steps["step"] == frame["step"]]
                assert frame["spec"] == sorted(at.loc[at["speculative"], "agent"].tolist())
                again = at[at["undone"] > 0]
                assert frame["undone"] == {str(a): int(n) for a, n in zip(again["agent"], again["undone"], strict=True)}
        # The scheduler's picture once everything ended: every speculative step and every undone run counted.
        picture = Timeline.of(source.timeline(), 30).at(1e9, 10, 2.0, 1.0)
        assert picture["counts"] == {
            "speculative": int(steps["speculative"].sum()),
            "undone": int(steps["undone"].sum()),
        }
        assert picture["ahead"] == [] and picture["rerun"] == []


def test_a_live_page_draws_the_pictures_of_the_replay(tmp_path: Path) -> None:
    """A live view builds each picture from the steps since the frame it draws (and the counts before them); every
    frame asked alone, as a page following the run asks, and a window scrubbed back, equal the replay's."""
    for _, _, live, _, folder in _runs(tmp_path)[:4]:
        replay = TestClient(make_app(TraceSource(folder), town_map(None, (20, 20))))
        following = TestClient(make_app(live, town_map(None, (20, 20))))
        for k in reversed(range(10)):  # each frame earlier than the last: the page's timeline starts at it
            want = replay.get("/api/frames", params={"first": k, "last": k + 1}).json()
            assert following.get("/api/frames", params={"first": k, "last": k + 1}).json() == want
        back = {"first": 2, "last": 10}
        assert following.get("/api/frames", params=back).json() == replay.get("/api/frames", params=back).json()
        assert any(f["sched"]["counts"]["undone"] for f in replay.get("/api/frames", params=back).json()["frames"])


def test_the_picture_names_who_runs_ahead_at_a_moment() -> None:
    # Agent 0 runs step 1 ahead of its blockers during [1, 2]; agent 1 runs step 1 again (2 runs undone) in [2, 3].
    rows = [
        (0, 0, 0, 0, 0.0, 1.0, 0, False, 0),
        (0, 1, 1, 0, 1.0, 2.0, 2, True, 0),
        (1, 0, 9, 0, 0.0, 1.5, 1, False, 0),
        (1, 1, 9, 0, 2.0, 3.0, 3, False, 2),
    ]
    columns = ["agent", "step", "x", "y", "start", "end", "unit", "speculative", "undone"]
    timeline = Timeline.of(pd.DataFrame(rows, columns=columns), 2)
    assert timeline.at(1.2, 2, 4.0, 1.0)["ahead"] == [0]
    during = timeline.at(2.5, 2, 4.0, 1.0)
    assert during["ahead"] == [] and during["rerun"] == [1]
    assert during["counts"] == {"speculative": 1, "undone": 2}
    assert timeline.at(0.5, 2, 4.0, 1.0)["counts"] == {"speculative": 0, "undone": 0}


def test_a_trace_without_the_columns_reads_as_nothing_ahead(tmp_path: Path) -> None:
    rows = [(0, 0, 0, 0, 0.0, 1.0, 0), (0, 1, 1, 0, 1.0, 2.0, 1)]
    frame = pd.DataFrame(rows, columns=["agent", "step", "x", "y", "start", "end", "unit"])
    frame["speculative"], frame["undone"] = None, None
    picture = Timeline.of(frame, 1).at(1.5, 2, 4.0, 1.0)
    assert picture["ahead"] == [] and picture["counts"] == {"speculative": 0, "undone": 0}


def test_the_live_stream_says_what_runs_ahead_and_counts_rollbacks(tmp_path: Path) -> None:
    for _, steps, live, log, _ in _runs(tmp_path)[:2]:
        now = live.speculation(-1)
        assert now is not None
        assert now["counts"] == {
            "committed": len(steps),
            "speculative": int(steps["speculative"].sum()),
            "undone": int(steps["undone"].sum()),
        }
        assert now["ahead"] == [] and now["seq"] == log.rolled_back
        assert [r[0] for r in now["rollbacks"]] == list(range(1, log.rolled_back + 1))[-len(now["rollbacks"]) :]
        assert live.speculation(log.rolled_back)["rollbacks"] == []  # type: ignore[index]
        events = _events(TestClient(make_app(live, town_map(None, (20, 20)))))
        spec = [e for e in events if e[0] == "spec"]
        assert spec and '"rollbacks":[]' in spec[-1][1]  # a new page is not flashed the old rollbacks
        assert events[-1][0] == "end"


def test_a_replay_has_no_live_speculation(tmp_path: Path) -> None:
    *_, folder = _runs(tmp_path)[0]
    assert TraceSource(folder).speculation(-1) is None
    events = _events(TestClient(make_app(TraceSource(folder), town_map(None, (20, 20)))))
    assert [e[0] for e in events] == ["complete", "end"]


def _events(client: TestClient) -> list[tuple[str, Any]]:
    """The live stream of a finished run: it ends by itself."""
    text = client.get("/api/live").text
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], fields.get("data")))
    return out
