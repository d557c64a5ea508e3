"""The run store in Redis: for runs whose controller may move to another machine, or whose workers share state.

It implements `RunStore` (the journal, checkpoints, the commit log) and adds the committed public state versions
of every agent back to the last checkpoint (`commit_states` / `public_state`), which workers on other machines
read. All keys of one run share the prefix `{key}` (a hash tag, so a Redis Cluster keeps them on one shard).

Every write is one Lua script, so each commit is atomic (a reader, or Redis restarted from its AOF, sees all of
it or none), and fenced: opening a store as the writer takes a new controller epoch (`INCR {key}:epoch`), and the
script refuses any write that carries an older epoch with `StaleEpoch`. So when a controller is replaced (resumed
elsewhere while the old one is stopped, not dead), the old one's late commits are refused instead of mixed in.

Durability matches `SqliteStore` with a Redis run with `appendonly yes`, `appendfsync everysec` (what
`--store redis` starts; see `store.redis_server`): Redis writes a command to its AOF (the OS's page cache) before
it replies, so a write that returned survives the death of either process (kill -9 of the controller or of
redis-server); the AOF is fsynced within a second, so a machine crash loses at most that second. `sync()` asks
Redis 7.2+ to fsync at once (`WAITAOF`); older servers fsync within the second anyway.

Keys: `epoch` (int), `journal` (hash "agent:step:index" -> prompt hash, newline, answer JSON), `checkpoint` (hash:
number, cut JSON), `states` (hash agent -> step and pickled state of the latest checkpoint), `log` (list of JSON
[event, info]), `public:<agent>` (sorted set scored by step, members "step:" + state bytes).
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar

import redis

from metropolis.store.base import Checkpoint, JournalKey, StaleEpoch

# KEYS[1] is the epoch; ARGV[1] the writer's epoch, then operations: a command, the index of its key in KEYS,
# how many arguments follow, and those. TRIM keeps a sorted set's members from the latest at or below a score.
_FENCED = """
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then
  return redis.error_reply('STALE ' .. tostring(current))
end
local i = 2
while i <= #ARGV do
  local op, key, n = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  if op == 'TRIM' then
    local top = redis.call('ZREVRANGEBYSCORE', key, ARGV[i + 3], '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #top > 0 then redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. top[2]) end
  else
    redis.call(op, key, unpack(ARGV, i + 3, i + 2 + n))
  end
  i = i + 3 + n
end
return 1
"""
_CHUNK = 256  # fields per HSET/ZADD: Lua's unpack takes a few thousand values at most
_STEP = struct.Struct("<q")


class StoreUnreachable(ConnectionError):
    """The Redis went away mid-run (a run-time failure, exit code 3): its AOF keeps what was committed."""


P = ParamSpec("P")
T = TypeVar("T")


def _reaching(method: Callable[Concatenate[RedisStore, P], T]) -> Callable[Concatenate[RedisStore, P], T]:
    """A lost connection becomes one `StoreUnreachable` that says what to do."""

    @functools.wraps(method)
    def wrapper(self: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnreachable(
                f"the run's Redis store at {self.url} is unreachable ({error}); what was committed is kept "
                "(AOF): once it is back, continue with `metropolis resume RUN`"
            ) from None

    return wrapper


class RedisStore:
    """A `RunStore` under `key` in the Redis at `url` (redis://host:port/db).

    `epoch` None: take a new epoch (a controller starting or resuming the run); an int: write under that one
    (a process the controller handed it to). `autocommit=False` keeps journal puts in memory and commits them
    with the next checkpoint, log entry or `close()`, in one script."""

    def __init__(self, url: str, key: str, autocommit: bool = True, epoch: int | None = None) -> None:
        self.url = url
        self.key = key
        self.autocommit = autocommit
        self.client = redis.Redis.from_url(url)
        self._fenced = self.client.register_script(_FENCED)
        self.epoch = int(self.client.incr(self._k("epoch"))) if epoch is None else epoch
        self._batch: dict[str, bytes] = {}
        self._versions = _Ops()  # public state versions not yet written (autocommit=False)
        self._public: set[int] = set()  # agents with public state versions, trimmed at each checkpoint
        self._waitaof = True

    @classmethod
    def exists(cls, url: str, key: str) -> bool:
        """Whether a run was ever stored under `key` (its epoch was taken)."""
        client = redis.Redis.from_url(url)
        try:
            return bool(client.exists(f"{{{key}}}:epoch"))
        finally:
            client.close()

    def _k(self, name: str) -> str:
        return f"{{{self.key}}}:{name}"

    # -- the journal ------------------------------------------------------------------------------------------

    @_reaching
    def journal_put(self, key: JournalKey, answer: dict[str, Any]) -> None:
        self._batch[_field(key)] = key.prompt_hash.encode() + b"\n" + json.dumps(answer).encode()
        if self.autocommit:
            self._write(_Ops())

    @_reaching
    def journal_get(self, key: JournalKey) -> dict[str, Any] | None:
        row: Any = self._batch.get(_field(key))
        if row is None:
            row = self.client.hget(self._k("journal"), _field(key))
        if row is None:
            return None
        asked, _, answer = bytes(row).partition(b"\n")
        if asked.decode() != key.prompt_hash:
            raise ValueError(
                f"the journal answered call #{key.index} of agent {key.agent} at step {key.step} for another "
                "prompt: this run does not repeat the journaled one (other options, code or agents?)"
            )
        found: dict[str, Any] = json.loads(answer)
        return found

    @_reaching
    def journal_size(self) -> int:
        self._write(_Ops())
        return int(self.client.hlen(self._k("journal")))

    @_reaching
    def fence(self) -> None:
        """Raise StaleEpoch now if another controller took over (before writing anything outside the store)."""
        current = self.client.get(self._k("epoch"))
        if current is None or int(current) != self.epoch:
            raise _stale(self.epoch, self.key, current)

    # -- public state versions --------------------------------------------------------------------------------

    @_reaching
    def commit_states(self, states: Iterable[tuple[int, int, bytes]]) -> None:
        """Commit (agent, step, public state) versions, atomically with the journal puts not yet written
        (with `autocommit=False`, kept with them until the next checkpoint)."""
        for agent, step, state in states:
            self._versions.add("ZADD", self._k(f"public:{agent}"), step, b"%d:" % step + state)
            self._public.add(agent)
        if self.autocommit:
            self._write(_Ops())

    @_reaching
    def public_state(self, agent: int, step: int) -> bytes | None:
        """The agent's public state as of `step` (its latest version at or before it); None if none is kept."""
        self._write(_Ops())  # a version still batched is committed first
        found: list[Any] = self.client.zrevrangebyscore(self._k(f"public:{agent}"), step, "-inf", start=0, num=1)
        return bytes(found[0]).partition(b":")[2] if found else None

    # -- checkpoints and the log ------------------------------------------------------------------------------

    @_reaching
    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """One script: the journal batch, the cut, the agent states (replacing the previous checkpoint's), the
        log entry, and public versions older than the cut's GVT dropped (the latest at or below it stays)."""
        ops = _Ops()
        states = self._k("states")
        ops.add("DEL", states)
        ops.hset(states, [(agent, _STEP.pack(step) + state) for agent, (step, state) in checkpoint.states.items()])
        ops.add("HSET", self._k("checkpoint"), "number", checkpoint.number, "cut", json.dumps(checkpoint.cut))
        ops.add("RPUSH", self._k("log"), json.dumps(["checkpoint", {"number": checkpoint.number}]))
        gvt = checkpoint.cut.get("gvt")
        if isinstance(gvt, int):
            for agent in sorted(self._public):
                ops.add("TRIM", self._k(f"public:{agent}"), gvt)
        self._write(ops)

    @_reaching
    def latest_checkpoint(self) -> Checkpoint | None:
        pipe = self.client.pipeline(transaction=True)  # MULTI/EXEC: the cut and its states from one instant
        pipe.hgetall(self._k("checkpoint"))
        pipe.hgetall(self._k("states"))
        head, rows = pipe.execute()
        if not head:
            return None
        states = {int(agent): (_STEP.unpack_from(row)[0], bytes(row[_STEP.size :])) for agent, row in rows.items()}
        return Checkpoint(int(head[b"number"]), json.loads(head[b"cut"]), states)

    @_reaching
    def log(self, event: str, info: dict[str, Any]) -> None:
        self._write(_Ops().add("RPUSH", self._k("log"), json.dumps([event, info], default=str)))

    @_reaching
    def history(self) -> list[tuple[str, dict[str, Any]]]:
        entries: list[Any] = self.client.lrange(self._k("log"), 0, -1)
        return [(event, info) for event, info in map(json.loads, entries)]

    @_reaching
    def sync(self) -> None:
        """Fsync the AOF now where the server can (Redis 7.2+: WAITAOF); older ones fsync within a second."""
        if not self._waitaof:
            return
        try:
            self.client.execute_command("WAITAOF", 1, 0, 0)
        except redis.ResponseError:
            self._waitaof = False  # an older server, or no AOF: nothing to wait for

    @_reaching
    def close(self) -> None:
        try:
            self._write(_Ops())
        finally:
            self.client.close()

    def _write(self, ops: _Ops) -> None:
        """Run `ops` (after the journal batch) as one fenced script; StaleEpoch if another controller took over."""
        if self._versions.argv:
            ops = _Ops().then(self._versions).then(ops)
        if self._batch:
            ops = _Ops().hset(self._k("journal"), list(self._batch.items())).then(ops)
        if not ops.argv:
            return
        try:
            self._fenced(keys=[self._k("epoch"), *ops.keys], args=[self.epoch, *ops.argv])
        except redis.ResponseError as error:
            if "STALE" not in str(error):
                raise
            raise _stale(self.epoch, self.key, str(error).rpartition(" ")[2]) from None
        self._batch = {}
        self._versions = _Ops()


class _Ops:
    """Operations for the fenced script: keys numbered (from 2; 1 is the epoch) and the flat argument list."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.argv: list[Any] = []

    def add(self, op: str, key: str, *args: Any) -> _Ops:
        index = self.keys.setdefault(key, len(self.keys) + 2)
        self.argv += [op, index, len(args), *args]
        return self

    def hset(self, key: str, rows: list[tuple[Any, Any]]) -> _Ops:
        """HSET in chunks (Lua's unpack takes a few thousand values at most)."""
        for start in range(0, len(rows), _CHUNK):
            self.add("HSET", key, *(value for row in rows[start : start + _CHUNK] for value in row))
        return self

    def then(self, other: _Ops) -> _Ops:
        """These operations, then `other`'s."""
        names = list(other.keys)
        at = 0
        while at < len(other.argv):
            op, index, n = other.argv[at : at + 3]
            self.add(op, names[index - 2], *other.argv[at + 3 : at + 3 + n])
            at += 3 + n
        return self


def _stale(epoch: int, key: str, current: object) -> StaleEpoch:
    if isinstance(current, bytes):
        current = current.decode()
    return StaleEpoch(
        f"refused: this controller's epoch {epoch} has passed (the run's epoch is now {current}: another "
        f"controller resumed run {key}); this write is dropped"
    )


def _field(key: JournalKey) -> str:
    return f"{key.agent}:{key.step}:{key.index}"
