"""The run store's protocol, held to the same cases in SQLite and in a real Redis (one redis-server per module,
on a free loopback port, with its AOF); then what only Redis adds: epoch fencing, public state versions, and
commits that survive redis-server killed and restarted from its AOF."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metropolis.store import Checkpoint, JournalKey, RunStore, SqliteStore, check_store

redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install 'metropolis-sim[redis]')")
NO_SERVER = "no redis-server (apt-get install redis-server)"
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason=NO_SERVER)

from metropolis.store.redis import RedisStore, StaleEpoch  # noqa: E402
from metropolis.store.redis_server import LocalRedis  # noqa: E402

Opener = Callable[[str, bool], RunStore]  # (store name, autocommit) -> a store; the same name reopens it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip(NO_SERVER)
    with LocalRedis(tmp_path_factory.mktemp("redis")) as local:
        yield local


@pytest.fixture(params=["sqlite", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "sqlite":
        return lambda name, autocommit: SqliteStore(tmp_path / f"{name}.sqlite", autocommit=autocommit)
    url = request.getfixturevalue("server").url
    return lambda name, autocommit: RedisStore(url, f"{tmp_path.name}:{name}", autocommit=autocommit)


def test_the_journal_answers_what_was_put_and_refuses_another_prompt(opener: Opener) -> None:
    store = opener("s", True)
    key = JournalKey(3, 10, 0, "abc")
    assert store.journal_get(key) is None
    store.journal_put(key, {"text": "hi", "tokens": 1})
    store.close()
    store = opener("s", True)
    assert store.journal_get(key) == {"text": "hi", "tokens": 1}
    assert store.journal_size() == 1
    with pytest.raises(ValueError, match="another prompt"):
        store.journal_get(JournalKey(3, 10, 0, "other"))
    store.close()


def test_batched_puts_are_committed_at_a_checkpoint(opener: Opener) -> None:
    store = opener("s", False)
    store.journal_put(JournalKey(0, 0, 0, "h"), {"text": "a", "tokens": 1})
    assert store.journal_get(JournalKey(0, 0, 0, "h")) == {"text": "a", "tokens": 1}  # the batch answers too
    store.save_checkpoint(Checkpoint(1, {"gvt": 5}, {0: (5, b"x")}))
    other = opener("s", True)  # another reader sees what is committed (for Redis: a new controller)
    assert other.journal_size() == 1
    other.close()


def test_the_latest_checkpoint_wins_and_the_log_keeps_the_history(opener: Opener) -> None:
    store = opener("s", True)
    assert store.latest_checkpoint() is None
    store.log("started", {"journal": 0})
    store.save_checkpoint(Checkpoint(1, {"gvt": 5}, {0: (5, b"a"), 1: (6, b"b")}))
    store.save_checkpoint(Checkpoint(2, {"gvt": 10}, {1: (11, b"c")}))
    assert store.latest_checkpoint() == Checkpoint(2, {"gvt": 10}, {1: (11, b"c")})
    assert [event for event, _ in store.history()] == ["started", "checkpoint", "checkpoint"]
    store.sync()
    store.close()


def test_a_stale_controllers_writes_are_refused(server: LocalRedis) -> None:
    old = RedisStore(server.url, "fenced")
    old.journal_put(JournalKey(0, 0, 0, "h"), {"text": "a"})
    new = RedisStore(server.url, "fenced")  # resumed elsewhere: a new epoch
    assert new.epoch == old.epoch + 1
    for late in (
        lambda: old.journal_put(JournalKey(0, 1, 0, "h"), {"text": "late"}),
        lambda: old.save_checkpoint(Checkpoint(9, {"gvt": 1}, {})),
        lambda: old.log("finished", {}),
        lambda: old.commit_states([(0, 1, b"zombie")]),
    ):
        with pytest.raises(StaleEpoch, match=f"epoch {old.epoch} has passed"):
            late()
    assert new.journal_size() == 1 and new.latest_checkpoint() is None and new.public_state(0, 5) is None
    assert new.history() == []
    new.log("resumed", {})  # the current epoch writes
    assert [event for event, _ in new.history()] == ["resumed"]
    old.client.close()
    new.close()


def test_public_state_versions_are_kept_back_to_the_last_checkpoint(server: LocalRedis) -> None:
    store = RedisStore(server.url, "public")
    store.commit_states([(0, 1, b"a1"), (0, 4, b"a4"), (1, 2, b"b2"), (0, 7, b"a7")])
    assert [store.public_state(0, s) for s in (0, 1, 3, 4, 6, 7, 99)] == [
        None,
        b"a1",
        b"a1",
        b"a4",
        b"a4",
        b"a7",
        b"a7",
    ]
    store.save_checkpoint(Checkpoint(1, {"gvt": 5}, {}))
    # versions below GVT 5 that a read at or after 5 can no longer reach are dropped; step 4's is what 5 reads
    assert [store.public_state(0, s) for s in (1, 4, 5, 7)] == [None, b"a4", b"a4", b"a7"]
    assert store.public_state(1, 5) == b"b2"
    store.close()
    batched = RedisStore(server.url, "public-batched", autocommit=False)
    batched.commit_states([(0, 1, b"a1")])
    assert RedisStore(server.url, "public-batched", epoch=0).public_state(0, 1) is None  # kept for the checkpoint
    batched.save_checkpoint(Checkpoint(1, {"gvt": 1}, {}))
    assert RedisStore(server.url, "public-batched", epoch=0).public_state(0, 1) == b"a1"
    batched.close()


def test_commits_survive_redis_killed_and_restarted_from_its_aof(tmp_path: Path) -> None:
    """kill -9 of redis-server right after the writes returned: the AOF (written before each reply, fsynced
    within a second) holds them all, and a server started on the same folder loads them."""
    with LocalRedis(tmp_path / "r") as local:
        store = RedisStore(local.url, "run")
        for step in range(200):
            store.journal_put(JournalKey(1, step, 0, "h"), {"text": str(step)})
        store.save_checkpoint(Checkpoint(3, {"gvt": 7}, {0: (7, b"state")}))
        store.client.close()
        os.kill(local.process.pid, signal.SIGKILL)
        local.process.wait()
        local.stop()
    with LocalRedis(tmp_path / "r") as again:
        store = RedisStore(again.url, "run")
        assert store.journal_size() == 200
        assert store.latest_checkpoint() == Checkpoint(3, {"gvt": 7}, {0: (7, b"state")})
        assert store.journal_get(JournalKey(1, 199, 0, "h")) == {"text": "199"}
        store.close()


@pytest.mark.parametrize(
    ("spec", "error"),
    [("mysql", "unknown --store 'mysql'"), ("redis://:6379/0", "not a Redis URL"),
     ("redis://h:99999/0", "not a Redis URL"), ("redis://h:6379/x", "not a Redis URL")],
)  # fmt: skip
def test_a_bad_store_is_one_line_before_the_run(spec: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        check_store(spec)
    assert check_store("redis://127.0.0.1:6379/2") == "redis://127.0.0.1:6379/2"


@needs_redis
def test_the_local_server_dies_with_its_parent(tmp_path: Path) -> None:
    """A child process starts a LocalRedis and is killed with SIGKILL: the parent-death signal takes the server."""
    import subprocess
    import sys
    import time

    code = (
        "import sys, pathlib, time; from metropolis.store.redis_server import LocalRedis; "
        f"r = LocalRedis(pathlib.Path({str(tmp_path)!r})).start(); print(r.process.pid, flush=True); time.sleep(60)"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": src}
    )
    assert child.stdout is not None
    pid = int(child.stdout.readline())
    child.kill()
    child.wait()
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("redis-server outlived its parent")


def test_the_store_bench_times_both_stores_side_by_side(server: LocalRedis) -> None:
    from metropolis.bench.store_cost import run_store_cost

    rows = run_store_cost(server.url, puts=20, checkpoints=3, agents=4, state_bytes=64, rounds=2)
    assert [r.operation for r in rows] == ["journal put", "checkpoint save", "sync", "journal put, batched"]
    assert all(r.sqlite_us > 0 and r.redis_us > 0 for r in rows)
    client = redis.Redis.from_url(server.url)
    assert not list(client.scan_iter(match="{metropolis-bench:*")), "it leaves nothing in a Redis it was given"
    client.close()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "--store", "mysql"], 2, "unknown --store 'mysql'; choose one of: sqlite, redis"),
        (["run", "--store", "redis://127.0.0.1:99999/0"], 2, "not a Redis URL"),
        (["run", "--store", "redis://127.0.0.1:{port}/0"], 3, "no Redis answers there"),
        (["bench", "store", "--url", "http://x"], 2, "not a Redis URL"),
        (["bench", "store", "--puts", "0"], 2, "--puts must be"),
        (["bench", "store", "--url", "redis://127.0.0.1:{port}/0"], 3, "no Redis answers there"),
    ],
)
def test_a_bad_or_unreachable_store_is_one_line_and_leaves_no_folder(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    from typer.testing import CliRunner

    from metropolis.cli.main import app
    from metropolis.llm.local_server import free_port

    out = tmp_path / "run"
    args = [a.format(port=free_port()) for a in args] + (["--out", str(out)] if args[0] == "run" else [])
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == code and len(lines) == 1 and message in lines[0], result.output
    assert not out.exists()


def test_resume_finds_no_run_under_another_key(server: LocalRedis, tmp_path: Path) -> None:
    from metropolis.store import open_store

    for spec, message in ((server.url, "holds no run under key 'nowhere'"), ("redis", "no redis/")):
        with pytest.raises(FileNotFoundError, match=message):
            open_store(spec, tmp_path, "nowhere", autocommit=True, resume=True).__enter__()
