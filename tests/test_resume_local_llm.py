"""A short real run (two generative agents on SmolLM2-135M, one llama.cpp server for the module) stopped at
`LIVE_POINTS` seeded random points (SIGKILL or SIGTERM), each then resumed: no journaled call is asked again,
and each resumed run is exactly the one its own answers tell: a replay of its trace in virtual time (every
answer from that trace) gives the same story, steps and calls. A real model answers differently from run to
run, so there is no uninterrupted run to compare with; given the journal, the run is fixed.

A point costs about one run's calls (the resume asks only what the journal lacks), so the run is a few
simulated minutes of short answers; `METROPOLIS_KILL_POINTS` sets the number of points (default 20). The
server is started once, here, and the runs reach it by URL, as `--llm http://HOST:PORT/v1` reaches any.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from metropolis.llm.local_server import LocalModelServer, unavailable_reason
from tests.test_resume import _done, _journal_books, _stop_at, needs_data

MISSING = unavailable_reason()
pytestmark = [pytest.mark.llm, pytest.mark.skipif(MISSING is not None, reason=f"{MISSING}")]
LIVE_POINTS = int(os.environ.get("METROPOLIS_KILL_POINTS", "20"))
SHORT = ["--genagent", "embedder=hash", "--genagent", "max_retries=0", "--genagent", "tokens_plan=24",
         "--genagent", "tokens_schedule=32", "--genagent", "tokens_decompose=24", "--genagent", "tokens_line=24",
         "--genagent", "tokens_reflect=24"]  # fmt: skip
STEPS = ["agent", "name", "step", "x", "y", "action", "events", "observed", "partners", "llm_calls"]
CALLS = ["agent", "name", "step", "function", "prompt", "output"]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    with LocalModelServer(n_ctx=1024, slots=2, n_threads=1) as running:
        yield running


def _live(server: LocalModelServer) -> list[str]:
    return ["run", "--llm", server.base_url, "--kind", "llama.cpp", "--model", server.config.model_alias,
            "-n", "2", "--hours", "0.04", "--start-hour", "5.99", "--checkpoint-minutes", "0.5", *SHORT]  # fmt: skip


def _told(folder: Path) -> dict[str, pd.DataFrame]:
    trace = folder / "trace"
    steps = pd.read_parquet(trace / "steps.parquet", columns=STEPS)
    calls = pd.read_parquet(trace / "calls.parquet", columns=CALLS)
    return {"steps": steps, "calls": calls}


@needs_data
def test_a_live_run_stopped_at_random_points_resumes_to_the_run_its_answers_tell(
    tmp_path: Path, server: LocalModelServer
) -> None:
    rng = random.Random(12)
    live = _live(server)
    resumed = 0
    for k in range(LIVE_POINTS):
        out = tmp_path / f"live-{k}"
        signum = rng.choice([signal.SIGKILL, signal.SIGTERM])
        _stop_at(live, out, tmp_path, rng.randrange(1, 5), rng.uniform(0.0, 0.5), signum)
        if json.loads((out / "meta.json").read_text())["status"] != "completed":
            assert "answers from the journal" in _done(["resume", str(out)], tmp_path)
            starts, hits, misses = _journal_books(out)
            assert hits == starts[-1], f"point {k}: every journaled call was answered from the journal"
            report = json.loads((out / "report.json").read_text())
            assert hits + misses == report["llm_calls"], f"point {k}: and none was asked again"
            resumed += 1
        replayed = tmp_path / f"replayed-{k}"  # the replay takes the recorded run's agents, day and settings
        _done(["run", "--replay", str(out), "--out", str(replayed)], tmp_path)
        assert (replayed / "timeline.md").read_text() == (out / "timeline.md").read_text(), f"point {k}"
        got, want = _told(out), _told(replayed)
        for table in ("steps", "calls"):
            pd.testing.assert_frame_equal(got[table], want[table], obj=f"point {k}: {table}")
    assert resumed >= min(LIVE_POINTS, 1)
