"""`metropolis run` killed (SIGKILL, SIGTERM, SIGINT) at 20 seeded random points per scenario, then `metropolis
resume`: the final report, trace, accounting and story equal those of a run never stopped, and no journaled call
is asked again (`METROPOLIS_KILL_POINTS` sets another number of points).

A point is made cheap by forking this process to run the command (`metropolis.cli.main`'s app, as the installed
script runs it) rather than starting an interpreter that imports everything again (seconds per point), and by a
short day of a few agents with frequent checkpoints. One test starts real subprocesses (`python -m`), so the
entry point itself is covered too."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from metropolis.cli.main import app
from metropolis.paths import shared_data_dir
from metropolis.store import STORE_FILE, SqliteStore
from metropolis.trace import Trace
from metropolis.trace.parts import PartWriter

needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")
SRC = Path(__file__).resolve().parents[1] / "src"
POINTS = int(os.environ.get("METROPOLIS_KILL_POINTS", "20"))
WALKERS = ["run", "-n", "5", "--hours", "0.25", "--checkpoint-minutes", "0.5"]
GENERATIVE = ["run", "--agent", "generative", "-n", "3", "--hours", "0.3", "--start-hour", "7.9"]


def _cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "METROPOLIS_SHARED": str(shared_data_dir(required=False))}
    return subprocess.Popen(
        [sys.executable, "-m", "metropolis.cli.main", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


class _Forked:
    """`metropolis ARGS` in a forked child of this process (its output to a file): a `Popen` for what the tests
    use of one. The CLI is imported here, before any fork, so each child starts with everything loaded."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.log = cwd / f".forked-{time.monotonic_ns()}.log"
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: run the command, never return into pytest
            code = 4
            try:
                for signum, handler in _FRESH.items():  # as a new process has them, not this one's (a server's)
                    signal.signal(signum, handler)
                fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                sys.stdout = sys.stderr = open(fd, "w", closefd=False)  # noqa: SIM115 (pytest's capture replaced them)
                os.chdir(cwd)
                os.environ["METROPOLIS_SHARED"] = str(shared_data_dir(required=False))
                try:
                    app(args, prog_name="metropolis")
                    code = 0
                except SystemExit as stop:
                    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def communicate(self, timeout: float) -> tuple[str, str]:
        end = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGKILL)
                raise TimeoutError(f"the forked command ran past {timeout} s")
            time.sleep(0.01)
        text = self.log.read_text()
        self.log.unlink()
        return text, text


Command = _Forked | subprocess.Popen[str]
_FRESH = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL}


def _done(args: list[str], cwd: Path, fork: bool = True) -> str:
    proc: Command = _Forked(args, cwd) if fork else _cli(args, cwd)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return out


def _stop_at(args: list[str], out: Path, cwd: Path, parts: int, delay: float, signum: int, fork: bool = True) -> None:
    """Start the run and send `signum` `delay` seconds after its trace has `parts` sealed parts (a point in its
    progress, whatever the machine's load; the run may finish first)."""
    proc: Command = _Forked([*args, "--out", str(out)], cwd) if fork else _cli([*args, "--out", str(out)], cwd)
    steps = out / "trace" / "steps"
    while proc.poll() is None and not (steps.is_dir() and len(list(steps.glob("part-*"))) >= parts):
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signum)
    proc.communicate(timeout=600)


def _result(folder: Path) -> dict[str, Any]:
    report = json.loads((folder / "report.json").read_text())
    for field in ("wall_seconds", "run_id", "command"):  # how and where this run was started, not its result
        report.pop(field)
    for option in ("out_dir", "force"):
        report["options"].pop(option, None)
    trace = folder / "trace"
    found = {
        "report": report,
        "steps": pd.read_parquet(trace / "steps.parquet"),
        "calls": pd.read_parquet(trace / "calls.parquet"),
        "trace_meta": json.loads((trace / "meta.json").read_text()),
        "accounting": (folder / "accounting.json").read_text(),
    }
    if (folder / "timeline.md").exists():
        found["timeline"] = (folder / "timeline.md").read_text()
    return found


def _assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], value, obj=key)
        else:
            assert got[key] == value, key


def _journal_books(folder: Path) -> tuple[list[int], int, int]:
    """Per resume, the journal's size when it began; the last resume's answers from the journal, and new."""
    store = SqliteStore(folder / STORE_FILE)
    try:
        history = store.history()
    finally:
        store.close()
    starts = [info["journal"] for event, info in history if event == "resumed"]
    finished = [info for event, info in history if event == "finished"][-1]
    return starts, finished["journal_hits"], finished["journal_misses"]


def _assert_readable_up_to_the_checkpoint(folder: Path) -> None:
    """What a stopped run left is a trace: pandas and `Trace.read` read at least what its checkpoint holds."""
    store = SqliteStore(folder / STORE_FILE)
    try:
        checkpoint = store.latest_checkpoint()
    finally:
        store.close()
    held = 0 if checkpoint is None else checkpoint.cut["agent_steps"]
    if not (folder / "trace" / "meta.json").exists():  # stopped before its trace began
        assert checkpoint is None
        return
    trace = Trace.read(folder / "trace")
    joined = folder / "trace" / "steps.parquet"  # killed after the parts were joined, before meta.json said so
    by_pandas = pd.read_parquet(joined if joined.exists() else folder / "trace" / "steps")
    assert len(trace.steps) == len(by_pandas) >= held
    assert len(trace.steps.drop_duplicates(["agent", "step"])) == len(trace.steps)


def _kill_and_resume(
    tmp_path: Path, args: list[str], signum: int, points: int, seed: int, checkpoints: int, fork: bool = True
) -> int:
    reference = tmp_path / "reference"
    _done([*args, "--out", str(reference)], tmp_path, fork)
    want = _result(reference)
    rng = random.Random(seed)
    stopped = 0
    for k in range(points):
        out = tmp_path / f"stopped-{k}"
        _stop_at(args, out, tmp_path, rng.randrange(checkpoints), rng.uniform(0.0, 0.02), signum, fork)
        status = json.loads((out / "meta.json").read_text())["status"]
        if status == "completed":
            _assert_same(_result(out), want)  # the signal came too late: nothing to resume
            continue
        stopped += 1
        _assert_readable_up_to_the_checkpoint(out)
        text = _done(["resume", str(out)], tmp_path, fork)
        assert "answers from the journal" in text
        assert json.loads((out / "meta.json").read_text())["status"] == "completed"
        _assert_same(_result(out), want)
        starts, hits, misses = _journal_books(out)
        assert hits == starts[-1], "every journaled call was answered from the journal, once"
        assert hits + misses == want["report"]["llm_calls"], "and no call was asked twice"
    return stopped


@needs_data
def test_walkers_killed_at_random_points_resume_to_the_same_run(tmp_path: Path) -> None:
    assert _kill_and_resume(tmp_path, WALKERS, signal.SIGKILL, POINTS, seed=1, checkpoints=28) >= min(POINTS, 1)


@needs_data
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_walkers_stopped_by_a_signal_resume_to_the_same_run(tmp_path: Path, signum: int) -> None:
    assert _kill_and_resume(tmp_path, WALKERS, signum, POINTS, seed=int(signum), checkpoints=28) >= min(POINTS, 1)


@needs_data
def test_a_signal_that_comes_while_a_trace_batch_is_written_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM sent to the run while it hands a batch of calls to the part writer, from another thread (as the
    kernel may deliver it to the checkpoint's I/O thread): the batch is written whole before the run stops, so
    the last checkpoint holds the calls of every step it holds, and the resumed trace has them all."""
    reference = tmp_path / "reference"
    _done([*WALKERS, "--out", str(reference)], tmp_path)
    write, calls = PartWriter.write, itertools.count(1)

    def signalled_write(self: PartWriter, batch: pa.Table) -> None:
        if self.table == "calls" and batch.num_rows and next(calls) == 3:  # in the forked run
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
            sender.start()
            sender.join()
            time.sleep(0.05)  # a handler run now would stop the run with the batch in no buffer
        write(self, batch)

    out = tmp_path / "stopped"
    with monkeypatch.context() as patched:
        patched.setattr(PartWriter, "write", signalled_write)
        _Forked([*WALKERS, "--out", str(out)], tmp_path).communicate(timeout=600)
    assert json.loads((out / "meta.json").read_text())["status"] == "terminated"
    _done(["resume", str(out)], tmp_path)
    _assert_same(_result(out), _result(reference))


@needs_data
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_installed_command_killed_in_a_subprocess_resumes_to_the_same_run(tmp_path: Path, signum: int) -> None:
    assert _kill_and_resume(tmp_path, WALKERS, signum, 1, seed=int(signum), checkpoints=20, fork=False) >= 0


@needs_data
def test_a_generative_replay_killed_at_random_points_resumes_to_the_same_story(tmp_path: Path) -> None:
    recorded = tmp_path / "recorded"
    _done([*GENERATIVE, "--out", str(recorded)], tmp_path)
    replay = [*GENERATIVE, "--replay", str(recorded), "--checkpoint-minutes", "1"]
    assert _kill_and_resume(tmp_path, replay, signal.SIGKILL, POINTS, seed=2, checkpoints=15) >= min(POINTS, 1)


@needs_data
def test_a_resume_killed_in_turn_resumes_again(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    _done([*WALKERS, "--out", str(reference)], tmp_path)
    out = tmp_path / "twice"
    _stop_at(WALKERS, out, tmp_path, 10, 0.0, signal.SIGKILL)
    proc = _cli(["resume", str(out)], tmp_path)
    steps = out / "trace" / "steps"
    while proc.poll() is None and len(list(steps.glob("part-*"))) < 20:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=600)
    if json.loads((out / "meta.json").read_text())["status"] != "completed":
        _done(["resume", str(out)], tmp_path)
    _assert_same(_result(out), _result(reference))


def test_resume_refuses_in_one_line_what_it_cannot_continue(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    done = tmp_path / "done"
    done.mkdir()
    (done / "meta.json").write_text(json.dumps({"status": "completed", "options": {}}))
    old = tmp_path / "old"
    old.mkdir()
    (old / "meta.json").write_text(json.dumps({"status": "interrupted", "options": {"hours": 0.01, "agents": 2}}))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{not json")
    cases = {
        str(tmp_path / "nowhere"): "no meta.json",
        str(done): "the run is completed",
        str(old): "cannot resume",
        str(tmp_path / "bad"): "not a run's meta.json",
    }
    for folder, message in cases.items():
        result = CliRunner().invoke(app, ["resume", folder])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], (folder, result.output)
