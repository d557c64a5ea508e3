"""Real runs on SmolLM2-135M (llama.cpp) stopped and resumed: no journaled call is asked again, and the resumed
run is exactly the one its journal tells.

Walkers calling the model, stopped at `METROPOLIS_KILL_POINTS` (default 20) seeded random points with SIGKILL or
SIGTERM, each then resumed: the steps and the calls asked equal those of an uninterrupted run (a walker's path
does not depend on what the model answers), and every answer in the trace is the journal's (as token counts:
a walker's trace keeps no text), which holds nothing else. A real model may answer differently from run to
run; given the journal, the run is fixed. A point costs about one run's calls (the resume asks only what the
journal lacks), so the run is a few simulated minutes of two walkers; one server, started here for the module,
answers them all by URL (`--llm http://HOST:PORT/v1`). On the shared 2-core machine the 20 points take about
2.5 minutes.

Generative agents, whose story does depend on the answers, killed once as a real process with its own server
(`--llm local`): a replay of the resumed trace in virtual time tells the same story.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from metropolis.llm.local_server import LocalModelServer, unavailable_reason
from metropolis.store import STORE_FILE
from tests.test_resume import _done, _journal_books, _stop_at, needs_data

MISSING = unavailable_reason()
pytestmark = [pytest.mark.llm, pytest.mark.skipif(MISSING is not None, reason=f"{MISSING}")]
POINTS = int(os.environ.get("METROPOLIS_KILL_POINTS", "20"))
WALKERS = ["--agent", "walker", "-n", "2", "--hours", "0.03", "--checkpoint-minutes", "0.5"]
STEPS = ["agent", "name", "step", "x", "y", "action", "events", "observed", "partners", "llm_calls"]
TOLD = ["prompt_tokens", "output_tokens"]
ASKED = ["agent", "step", "function"]  # walkers keep no text: their calls are sized
LIVE = ["run", "--llm", "local", "-n", "2", "--hours", "0.04", "--start-hour", "5.99", "--checkpoint-minutes", "0.5",
        "--genagent", "embedder=hash", "--genagent", "max_retries=0"]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    with LocalModelServer(n_ctx=512, slots=2) as running:
        yield running


def _trace(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steps and calls by agent and step: in real time the order of commits is the wall clock's."""
    trace = folder / "trace"
    steps = pd.read_parquet(trace / "steps.parquet", columns=STEPS)
    calls = pd.read_parquet(trace / "calls.parquet", columns=[*ASKED, *TOLD])
    calls["index"] = calls.groupby(["agent", "step"]).cumcount()  # an agent's calls in a step, in their order
    for frame in (steps, calls):  # a dictionary's order is that of first appearance, the wall clock's too
        for column in frame.columns[frame.dtypes == "category"]:
            frame[column] = frame[column].astype(str)
    steps = steps.sort_values(["agent", "step"], kind="stable").reset_index(drop=True)
    calls = calls.sort_values(["agent", "step", "index"], kind="stable").reset_index(drop=True)
    return steps, calls


def _journaled(folder: Path) -> dict[tuple[int, int, int], tuple[int, int]]:
    """What the journal holds: each call's answer as token counts (what a walker's trace keeps of it)."""
    db = sqlite3.connect(folder / STORE_FILE)
    try:
        rows = db.execute("SELECT agent, step, idx, answer FROM journal").fetchall()
    finally:
        db.close()
    answers = {(agent, step, idx): json.loads(answer) for agent, step, idx, answer in rows}
    return {key: (answer["prompt_tokens"], answer["completion_tokens"]) for key, answer in answers.items()}


@needs_data
def test_walkers_on_a_real_model_stopped_at_random_points_resume_to_the_run_the_journal_tells(
    tmp_path: Path, server: LocalModelServer
) -> None:
    run = ["run", "--llm", server.base_url, "--kind", "llama.cpp", "--model", server.config.model_alias, *WALKERS]
    reference = tmp_path / "reference"
    _done([*run, "--out", str(reference)], tmp_path)
    want_steps, want_calls = _trace(reference)
    assert len(want_calls), "the walkers must call the model"
    rng = random.Random(12)
    resumed = 0
    for k in range(POINTS):
        out = tmp_path / f"stopped-{k}"
        signum = rng.choice([signal.SIGKILL, signal.SIGTERM])
        _stop_at(run, out, tmp_path, rng.randrange(1, 4), rng.uniform(0.0, 1.0), signum)
        if json.loads((out / "meta.json").read_text())["status"] != "completed":
            assert "answers from the journal" in _done(["resume", str(out)], tmp_path)
            starts, hits, misses = _journal_books(out)
            assert hits == starts[-1], f"point {k}: every journaled call was answered from the journal"
            assert hits + misses == len(want_calls), f"point {k}: and none was asked again"
            resumed += 1
        steps, calls = _trace(out)
        pd.testing.assert_frame_equal(steps, want_steps, obj=f"point {k}: steps")
        pd.testing.assert_frame_equal(calls[ASKED], want_calls[ASKED], obj=f"point {k}: calls asked")
        keys = zip(calls["agent"], calls["step"], calls["index"], strict=True)
        told = dict(zip(keys, zip(calls["prompt_tokens"], calls["output_tokens"], strict=True), strict=True))
        assert told == _journaled(out), f"point {k}: the trace's answers are the journal's"
    assert resumed >= min(POINTS, 1)


@needs_data
def test_a_killed_local_run_resumes_without_asking_twice(tmp_path: Path) -> None:
    out = tmp_path / "live"
    _stop_at(LIVE, out, tmp_path, 3, 0.0, signal.SIGKILL, fork=False)  # a real process, with its llama server
    assert json.loads((out / "meta.json").read_text())["status"] == "running"  # as kill -9 left it
    assert "answers from the journal" in _done(["resume", str(out)], tmp_path, fork=False)
    starts, hits, misses = _journal_books(out)
    assert hits == starts[-1] > 0, "every journaled call was answered from the journal"
    report = json.loads((out / "report.json").read_text())
    assert hits + misses == report["llm_calls"], "and none was asked again"
    replayed = tmp_path / "replayed"  # the replay takes the recorded run's agents, day and settings
    _done(["run", "--replay", str(out), "--out", str(replayed)], tmp_path)
    assert (replayed / "timeline.md").read_text() == (out / "timeline.md").read_text()
