"""What a commit costs in the Redis store against the embedded SQLite store, measured side by side in one run.

Each operation is timed on both stores in alternating rounds (so a busy machine slows both alike), and the
median per commit is reported, with Redis's as a ratio of SQLite's:
- "journal put": one answered LLM call committed as it arrives (a live run; for Redis one fenced Lua script,
  for SQLite one transaction in WAL mode);
- "journal put, batched": the same written with the next checkpoint (a virtual-time run), per put;
- "checkpoint save": a cut with every agent's state (`agents` states of `state_bytes` each), atomically;
- "sync": everything so far made durable against a machine crash (SQLite: a WAL checkpoint's fsync; Redis
  before 7.2 has no command for it and fsyncs its AOF within a second, so this is nearly free there).
The Redis is a local redis-server on loopback (AOF on, `appendfsync everysec`) unless `url` names one: a
Redis across a network adds its round trip to every commit but the batched ones.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from metropolis.store import Checkpoint, JournalKey, RunStore, SqliteStore

ANSWER = {"text": "x" * 400, "tokens": 60}  # about a generative agent's reply


@dataclass(frozen=True, slots=True)
class StoreCostRow:
    operation: str
    sqlite_us: float  # median per commit
    redis_us: float

    @property
    def ratio(self) -> float:
        return self.redis_us / self.sqlite_us if self.sqlite_us > 0 else float("inf")


@contextlib.contextmanager
def _redis_url(url: str | None, folder: Path) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from metropolis.store.redis_server import LocalRedis

    with LocalRedis(folder / "redis") as local:
        yield local.url


def run_store_cost(
    url: str | None = None, puts: int = 500, checkpoints: int = 20, agents: int = 25, state_bytes: int = 2048,
    rounds: int = 5,
) -> list[StoreCostRow]:  # fmt: skip
    """The rows above; `puts` and `checkpoints` per round and store, `rounds` alternating rounds."""
    from metropolis.store.redis import RedisStore  # needs redis-py

    for name, value, low in (("puts", puts, 1), ("checkpoints", checkpoints, 1), ("agents", agents, 1),
                             ("state_bytes", state_bytes, 0), ("rounds", rounds, 1)):  # fmt: skip
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    samples: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, _redis_url(url, Path(tmp)) as redis_url:
        key = f"metropolis-bench:{uuid.uuid4().hex}"
        for r in range(rounds):
            order = ["sqlite", "redis"] if r % 2 == 0 else ["redis", "sqlite"]
            for kind in order:
                for autocommit in (True, False):
                    store: RunStore = (
                        SqliteStore(Path(tmp) / f"{r}-{autocommit}.sqlite", autocommit=autocommit)
                        if kind == "sqlite"
                        else RedisStore(redis_url, f"{key}:{r}:{autocommit}", autocommit=autocommit)
                    )
                    try:
                        _measure(store, kind, autocommit, puts, checkpoints, agents, state_bytes, samples)
                    finally:
                        store.close()
        if url is not None:
            _forget(redis_url, key)
    return [
        StoreCostRow(op, statistics.median(by["sqlite"]) * 1e6, statistics.median(by["redis"]) * 1e6)
        for op, by in samples.items()
    ]


def _measure(
    store: RunStore, kind: str, autocommit: bool, puts: int, checkpoints: int, agents: int, state_bytes: int,
    samples: dict[str, dict[str, list[float]]],
) -> None:  # fmt: skip
    def add(op: str, seconds: float) -> None:
        samples.setdefault(op, {"sqlite": [], "redis": []})[kind].append(seconds)

    if autocommit:
        for step in range(puts):
            key = JournalKey(1, step, 0, "h")
            t0 = time.perf_counter()
            store.journal_put(key, ANSWER)
            add("journal put", time.perf_counter() - t0)
        states = {a: (7, bytes([a % 256]) * state_bytes) for a in range(agents)}
        for n in range(1, checkpoints + 1):
            checkpoint = Checkpoint(n, {"gvt": n}, states)
            t0 = time.perf_counter()
            store.save_checkpoint(checkpoint)
            add("checkpoint save", time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.sync()
            add("sync", time.perf_counter() - t0)
        return
    t0 = time.perf_counter()
    for step in range(puts):
        store.journal_put(JournalKey(1, step, 0, "h"), ANSWER)
    store.save_checkpoint(Checkpoint(1, {"gvt": 1}, {}))
    add("journal put, batched", (time.perf_counter() - t0) / puts)


def _forget(url: str, key: str) -> None:
    """Delete what the bench wrote into a Redis someone else runs."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for name in client.scan_iter(match=f"{{{key}:*"):
            client.delete(name)
    finally:
        client.close()
