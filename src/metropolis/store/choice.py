"""Which store a run keeps its journal and checkpoints in, chosen by `--store`, and opening it.

- "" or "sqlite": the embedded default, one SQLite file in the run folder.
- "redis": a local `redis-server` started for the run (its AOF in the run folder's `redis/`), stopped at the end;
  a resume starts it again on the same folder.
- "redis://HOST:PORT/DB": a Redis someone runs (shared by machines); the run's keys are under its `store_key`,
  recorded in the run's meta.json so that `metropolis resume` finds them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from metropolis.registry import unknown
from metropolis.store.base import RunStore
from metropolis.store.sqlite import STORE_FILE, SqliteStore

STORES = ("sqlite", "redis", "redis://HOST:PORT/DB")
S = TypeVar("S", bound=RunStore)
REDIS_FOLDER = "redis"  # the local redis-server's AOF, in the run folder


def check_store(spec: str) -> str:
    """`spec` if it names a store (a URL checked for host, port and database), else a one-line ValueError."""
    if spec in ("", "sqlite", "redis"):
        return spec
    if not spec.startswith(("redis://", "rediss://")):
        raise unknown("--store", spec, STORES)
    try:
        parts = urlsplit(spec)
        port = parts.port
        db = parts.path.strip("/") or "0"
    except ValueError as error:
        raise ValueError(f"--store {spec}: not a Redis URL ({error}); e.g. redis://127.0.0.1:6379/0") from None
    if not parts.hostname or not db.isdigit() or (port is not None and not 0 < port < 65536):
        raise ValueError(f"--store {spec}: not a Redis URL redis://HOST:PORT/DB (e.g. redis://127.0.0.1:6379/0)")
    return spec


def check_reachable(spec: str) -> None:
    """Before a run starts: the Redis client is installed, and a URL's server answers (a local one can start)."""
    if check_store(spec) in ("", "sqlite"):
        return
    try:
        import redis
    except ImportError:
        raise RuntimeError(
            "--store redis needs the Redis client: pip install 'metropolis-sim[redis]' (install.sh installs it)"
        ) from None
    if spec == "redis":
        from metropolis.store.redis_server import find_redis_server

        find_redis_server()
        return
    client = redis.Redis.from_url(spec, socket_connect_timeout=3.0, socket_timeout=3.0)
    try:
        client.ping()
    except redis.RedisError as error:
        raise ConnectionError(f"--store {spec}: no Redis answers there ({error})") from None
    finally:
        client.close()


def new_store_key() -> str:
    """The prefix of one run's keys in a shared Redis: unique across runs and machines."""
    return f"metropolis:{uuid.uuid4().hex}"


@contextlib.contextmanager
def open_store(spec: str, folder: Path, key: str, autocommit: bool, resume: bool) -> Iterator[RunStore]:
    """Open the run's store (starting a local redis-server for "redis"), and close it (and stop the server).
    `resume`: the store must hold the run already; a FileNotFoundError says where it was looked for."""
    check_store(spec)
    if spec in ("", "sqlite"):
        file = folder / STORE_FILE
        if resume and not file.is_file():
            raise FileNotFoundError(
                f"{folder} has no {STORE_FILE}: it was not run with checkpoints, so it cannot resume"
            )
        with _closing(SqliteStore(file, autocommit=autocommit)) as store:
            yield store
        return
    from metropolis.store.redis import RedisStore  # redis-py: only for runs that ask for Redis
    from metropolis.store.redis_server import LocalRedis

    with contextlib.ExitStack() as stack:
        if spec == "redis":
            if resume and not (folder / REDIS_FOLDER).is_dir():
                raise FileNotFoundError(f"{folder} has no {REDIS_FOLDER}/ (the local Redis's AOF): it cannot resume")
            url = stack.enter_context(LocalRedis(folder / REDIS_FOLDER)).url
        else:
            url = spec
        if resume and not RedisStore.exists(url, key):
            raise FileNotFoundError(f"the Redis at {url} holds no run under key {key!r}: it cannot resume from it")
        yield stack.enter_context(_closing(RedisStore(url, key, autocommit=autocommit)))


@contextlib.contextmanager
def _closing(store: S) -> Iterator[S]:
    """Close the store at the end; when the run failed already (the store's server gone, say), a failure to
    close must not hide the one that stopped it."""
    try:
        yield store
    except BaseException:
        with contextlib.suppress(Exception):
            store.close()
        raise
    store.close()
