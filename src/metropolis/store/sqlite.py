"""The embedded run store: one SQLite file in the run folder, in WAL mode.

Why SQLite: one file, atomic transactions, no server, in the standard library. In WAL mode with
`synchronous=NORMAL` a committed transaction survives the death of the process (it is in the OS's page cache);
`sync()` fsyncs the log, so that everything committed before it also survives the machine's. `sync()` opens
its own connection, so it may run on another thread (the checkpointer syncs off the run's thread). A journal
put is one small transaction (tens of microseconds); a run that makes its calls in virtual time may batch them
(`autocommit=False`): they are kept in memory and written in one transaction with the next checkpoint.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metropolis.store.base import Checkpoint, JournalKey

STORE_FILE = "store.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    agent INTEGER NOT NULL, step INTEGER NOT NULL, idx INTEGER NOT NULL, prompt_hash TEXT NOT NULL,
    answer TEXT NOT NULL, PRIMARY KEY (agent, step, idx));
CREATE TABLE IF NOT EXISTS checkpoints (number INTEGER PRIMARY KEY, cut TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agent_states (
    number INTEGER NOT NULL, agent INTEGER NOT NULL, step INTEGER NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (number, agent));
CREATE INDEX IF NOT EXISTS agent_states_by_agent ON agent_states (agent, number);
CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL, info TEXT NOT NULL);
"""


class SqliteStore:
    """A `RunStore` in one SQLite file; `autocommit=False` batches journal puts until the next `sync()`."""

    def __init__(self, path: Path | str, autocommit: bool = True) -> None:
        self.path = Path(path)
        self.autocommit = autocommit
        self._db = sqlite3.connect(self.path, isolation_level=None)  # transactions are explicit
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._batch: dict[tuple[int, int, int], tuple[str, str]] = {}  # puts not yet written (autocommit=False)

    # -- the journal ------------------------------------------------------------------------------------------

    def journal_put(self, key: JournalKey, answer: dict[str, Any]) -> None:
        row = (key.prompt_hash, json.dumps(answer))
        if not self.autocommit:
            self._batch[_slot(key)] = row
            return
        self._db.execute("INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?, ?)", (*_slot(key), *row))

    def journal_get(self, key: JournalKey) -> dict[str, Any] | None:
        row = self._batch.get(_slot(key))
        if row is None:
            row = self._db.execute(
                "SELECT prompt_hash, answer FROM journal WHERE agent = ? AND step = ? AND idx = ?", _slot(key)
            ).fetchone()
        if row is None:
            return None
        if row[0] != key.prompt_hash:
            raise ValueError(
                f"the journal answered call #{key.index} of agent {key.agent} at step {key.step} for another "
                "prompt: this run does not repeat the journaled one (other options, code or agents?)"
            )
        answer: dict[str, Any] = json.loads(row[1])
        return answer

    def journal_size(self) -> int:
        self._write_batch()
        return int(self._db.execute("SELECT COUNT(*) FROM journal").fetchone()[0])

    # -- checkpoints and the log ------------------------------------------------------------------------------

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._save(checkpoint, "DELETE FROM agent_states WHERE number < ?", [(checkpoint.number,)])

    def save_increment(self, checkpoint: Checkpoint) -> None:
        """Only the states given are replaced (their older rows deleted); every other agent keeps its newest."""
        superseded = [(checkpoint.number, agent) for agent in checkpoint.states]
        self._save(checkpoint, "DELETE FROM agent_states WHERE number < ? AND agent = ?", superseded)

    def _save(self, checkpoint: Checkpoint, delete: str, rows: Sequence[tuple[int, ...]]) -> None:
        self._write_batch()
        db = self._db
        db.execute("BEGIN")
        db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (checkpoint.number, json.dumps(checkpoint.cut)))
        db.executemany(delete, rows)
        db.executemany(
            "INSERT OR REPLACE INTO agent_states VALUES (?, ?, ?, ?)",
            [(checkpoint.number, agent, step, state) for agent, (step, state) in checkpoint.states.items()],
        )
        db.execute(
            "INSERT INTO log (event, info) VALUES ('checkpoint', ?)", (json.dumps({"number": checkpoint.number}),)
        )
        db.execute("COMMIT")

    def latest_checkpoint(self) -> Checkpoint | None:
        row = self._db.execute("SELECT number, cut FROM checkpoints ORDER BY number DESC LIMIT 1").fetchone()
        if row is None:
            return None
        states = {  # the newest row per agent (ordered, so a later one replaces an earlier)
            agent: (step, bytes(state))
            for agent, step, state in self._db.execute(
                "SELECT agent, step, state FROM agent_states WHERE number <= ? ORDER BY number", (row[0],)
            )
        }
        return Checkpoint(row[0], json.loads(row[1]), states)

    def log(self, event: str, info: dict[str, Any]) -> None:
        self._write_batch()
        self._db.execute("INSERT INTO log (event, info) VALUES (?, ?)", (event, json.dumps(info, default=str)))

    def history(self) -> list[tuple[str, dict[str, Any]]]:
        return [(e, json.loads(i)) for e, i in self._db.execute("SELECT event, info FROM log ORDER BY seq")]

    def sync(self) -> None:
        """Fsync the log (a WAL checkpoint does, before it copies the log into the database file)."""
        own = sqlite3.connect(self.path, isolation_level=None)
        try:
            own.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            own.close()

    def close(self) -> None:
        self._write_batch()
        self._db.close()

    def _write_batch(self) -> None:
        if self._batch:
            rows = [(*k, *v) for k, v in self._batch.items()]
            self._batch = {}
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")


def _slot(key: JournalKey) -> tuple[int, int, int]:
    return (key.agent, key.step, key.index)
