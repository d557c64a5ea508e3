"""`metropolis run --store redis` against a real redis-server: the same run as the embedded store's; redis-server
killed mid-run and the run resumed from its AOF; the controller killed (SIGKILL) and `metropolis resume RUN`
continuing from Redis; each identical to a run never stopped, with no journaled LLM call asked twice."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.test_resume import WALKERS, _assert_same, _cli, _done, _result, _stop_at, needs_data

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'metropolis-sim[redis]')")
pytestmark = [
    needs_data,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server (apt-get install redis-server)"),
]

from metropolis.store.redis import RedisStore  # noqa: E402
from metropolis.store.redis_server import LocalRedis  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(tmp_path_factory.mktemp("redis")) as local:
        yield local


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The walkers' run with the embedded store, never stopped."""
    folder = tmp_path_factory.mktemp("reference") / "run"
    _done([*WALKERS, "--out", str(folder)], folder.parent)
    return _same(folder)


def _same(folder: Path) -> dict[str, Any]:
    """What must be identical: the run's result, not which store kept it."""
    result = _result(folder)
    result["report"]["options"].pop("store", None)
    return result


def _books(folder: Path, url: str | None = None) -> tuple[list[int], int, int]:
    """As tests.test_resume's: per resume the journal's size when it began; the last answers from it, and new."""
    key = json.loads((folder / "meta.json").read_text())["store_key"]
    with LocalRedis(folder / "redis") if url is None else _nothing() as local:
        store = RedisStore(url or local.url, key, epoch=0)  # a reader: takes no epoch
        history = store.history()
        store.client.close()
    starts = [info["journal"] for event, info in history if event == "resumed"]
    finished = [info for event, info in history if event == "finished"][-1]
    return starts, finished["journal_hits"], finished["journal_misses"]


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _resumed_identically(folder: Path, want: dict[str, Any], url: str | None = None) -> None:
    assert json.loads((folder / "meta.json").read_text())["status"] != "completed", "the fault came too late"
    text = _done(["resume", str(folder)], folder.parent)
    assert "answers from the journal" in text
    _assert_same(_same(folder), want)
    starts, hits, misses = _books(folder, url)
    assert hits == starts[-1], "every journaled call was answered from the journal, once"
    assert hits + misses == want["report"]["llm_calls"], "and no call was asked twice"


def test_a_run_in_redis_is_the_embedded_run(tmp_path: Path, reference: dict[str, Any], server: LocalRedis) -> None:
    local, shared = tmp_path / "local", tmp_path / "shared"
    _done([*WALKERS, "--store", "redis", "--out", str(local)], tmp_path)
    _done([*WALKERS, "--store", server.url, "--out", str(shared)], tmp_path)
    _assert_same(_same(local), reference)
    _assert_same(_same(shared), reference)
    assert (local / "redis" / "appendonlydir").is_dir() and not (local / "store.sqlite").exists()
    assert not _redis_of(local), "the local redis-server stopped with the run"
    _assert_public_versions(shared, server.url)


def _assert_public_versions(folder: Path, url: str) -> None:
    """The store holds each agent's committed public states back to the last checkpoint: the last ones are
    where the trace says the agents ended."""
    key = json.loads((folder / "meta.json").read_text())["store_key"]
    store = RedisStore(url, key, epoch=0)
    steps = pd.read_parquet(folder / "trace" / "steps.parquet")
    last = steps[steps.step == steps.step.max()]
    for row in last.itertuples():
        state = store.public_state(int(row.agent), int(row.step) + 1)
        assert state is not None and tuple(pickle.loads(state).pos) == (row.x, row.y)
    checkpoint = store.latest_checkpoint()
    assert checkpoint is not None
    first = store.client.zrange(f"{{{key}}}:public:0", 0, 0, withscores=True)
    assert first[0][1] <= checkpoint.cut["gvt"], "the version a read at the checkpoint's GVT needs is kept"
    assert store.public_state(0, checkpoint.cut["gvt"] - 40) is None, "older ones are dropped"
    store.client.close()


def test_the_controller_killed_resumes_from_redis(
    tmp_path: Path, reference: dict[str, Any], server: LocalRedis
) -> None:
    for store, url in (("redis", None), (server.url, server.url)):
        out = tmp_path / f"killed-{url is not None}"
        _stop_at([*WALKERS, "--store", store], out, tmp_path, 8, 0.02, signal.SIGKILL)
        assert not _redis_of(out), "the local redis-server died with its parent"
        _resumed_identically(out, reference, url)


def test_redis_killed_mid_run_resumes_from_its_aof(tmp_path: Path, reference: dict[str, Any]) -> None:
    out = tmp_path / "redis-killed"
    proc = _cli([*WALKERS, "--store", "redis", "--out", str(out)], tmp_path)
    steps = out / "trace" / "steps"
    while proc.poll() is None and not (steps.is_dir() and len(list(steps.glob("part-*"))) >= 8):
        time.sleep(0.01)
    for pid in _redis_of(out):
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3 and len(err.strip().splitlines()) == 1, err  # one line, a failure at run time
    assert json.loads((out / "meta.json").read_text())["status"] == "failed"
    _resumed_identically(out, reference)


def _redis_of(folder: Path) -> list[int]:
    """The redis-server processes working in `folder`/redis (Redis moves into its --dir and rewrites its argv)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            is_redis = (proc / "comm").read_text().strip() == "redis-server"
            running = (proc / "stat").read_text().rpartition(")")[2].split()[0] != "Z"
            here = is_redis and running and Path(os.readlink(proc / "cwd")) == (folder / "redis").resolve()
        except OSError:
            continue
        if here:
            found.append(int(proc.name))
    return found


def test_a_replaced_controllers_late_commit_is_refused(
    tmp_path: Path, reference: dict[str, Any], server: LocalRedis
) -> None:
    """A controller stopped (SIGSTOP) mid-run while another resumes the run to its end, then continued: its
    next commit is refused (one line, exit 3), and the run it left behind stays the resumed one, whole."""
    out = tmp_path / "zombie"
    zombie = _cli([*WALKERS, "--store", server.url, "--out", str(out)], tmp_path)
    steps = out / "trace" / "steps"
    while zombie.poll() is None and not (steps.is_dir() and len(list(steps.glob("part-*"))) >= 6):
        time.sleep(0.01)
    zombie.send_signal(signal.SIGSTOP)
    try:
        _done(["resume", str(out)], tmp_path)
    finally:
        zombie.send_signal(signal.SIGCONT)
    _, err = zombie.communicate(timeout=600)
    assert zombie.returncode == 3, err
    assert len(err.strip().splitlines()) == 1 and "has passed" in err and "another controller resumed" in err, err
    assert json.loads((out / "meta.json").read_text())["status"] == "completed"
    _assert_same(_same(out), reference)
