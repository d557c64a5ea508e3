"""Where a durable run keeps what lets it resume: the LLM journal, the checkpoints and a commit log.

`RunStore` is the interface; `SqliteStore` (one file in the run folder) is the embedded default; `RedisStore`
(store.redis, imported on demand: it needs redis-py) keeps them in a Redis shared by machines, and `--store`
chooses (store.choice).
"""

from metropolis.store.base import Checkpoint, JournalKey, RunStore, StaleEpoch
from metropolis.store.choice import STORES, check_store, open_store
from metropolis.store.sqlite import STORE_FILE, SqliteStore

__all__ = [
    "STORES",
    "STORE_FILE",
    "Checkpoint",
    "JournalKey",
    "RunStore",
    "SqliteStore",
    "StaleEpoch",
    "check_store",
    "open_store",
]
