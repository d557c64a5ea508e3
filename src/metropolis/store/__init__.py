"""Where a durable run keeps what lets it resume: the LLM journal, the checkpoints and a commit log.

`RunStore` is the interface; `SqliteStore` (one file in the run folder) is the embedded default.
"""

from metropolis.store.base import Checkpoint, JournalKey, RunStore
from metropolis.store.sqlite import STORE_FILE, SqliteStore

__all__ = ["STORE_FILE", "Checkpoint", "JournalKey", "RunStore", "SqliteStore"]
