"""The SQLite run store: the journal, checkpoints (the latest wins, atomically) and the commit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from metropolis.store import Checkpoint, JournalKey, SqliteStore


def test_the_journal_answers_what_was_put_and_refuses_another_prompt(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    key = JournalKey(3, 10, 0, "abc")
    assert store.journal_get(key) is None
    store.journal_put(key, {"text": "hi", "tokens": 1})
    store.close()
    store = SqliteStore(tmp_path / "s.sqlite")
    assert store.journal_get(key) == {"text": "hi", "tokens": 1}
    assert store.journal_size() == 1
    with pytest.raises(ValueError, match="another prompt"):
        store.journal_get(JournalKey(3, 10, 0, "other"))


def test_batched_puts_are_committed_at_a_checkpoint(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite", autocommit=False)
    store.journal_put(JournalKey(0, 0, 0, "h"), {"text": "a", "tokens": 1})
    store.save_checkpoint(Checkpoint(1, {"gvt": 5}, {0: (5, b"x")}))
    other = SqliteStore(tmp_path / "s.sqlite")  # another reader sees what is committed
    assert other.journal_size() == 1
    other.close()
    store.close()


def test_the_latest_checkpoint_wins_and_the_log_keeps_the_history(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    assert store.latest_checkpoint() is None
    store.log("started", {"journal": 0})
    store.save_checkpoint(Checkpoint(1, {"gvt": 5}, {0: (5, b"a"), 1: (6, b"b")}))
    store.save_checkpoint(Checkpoint(2, {"gvt": 10}, {1: (11, b"c")}))
    latest = store.latest_checkpoint()
    assert latest == Checkpoint(2, {"gvt": 10}, {1: (11, b"c")})
    assert [event for event, _ in store.history()] == ["started", "checkpoint", "checkpoint"]
    store.sync()
    store.close()
