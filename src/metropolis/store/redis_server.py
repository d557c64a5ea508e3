"""A local `redis-server` for `--store redis`: on a free loopback port, its data in the run folder, stopped at the
end, and never outliving us.

AOF on, `appendfsync everysec`: Redis writes each command to the AOF (the OS's page cache) before it replies, so
a commit that returned survives the death of either process (kill -9 of the run or of redis-server), as the
embedded SQLite store's does (WAL, synchronous=NORMAL); the fsync comes within a second, so a machine crash loses
at most that second. `appendfsync always` would fsync before every reply: milliseconds per LLM journal put on a
disk, for a guarantee (the machine's crash) the checkpoints' own fsyncs already bound. RDB snapshots are off: the
AOF alone is the store, and restarting on the same folder (a resume) loads it.

The server starts in its own session, with a parent-death signal (the same `launch` as the local LLM server):
SIGKILL of the run kills it too; any other ending stops it with SIGTERM (Redis then fsyncs and exits).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from metropolis.llm.local_server import free_port, kill_group, launch

INSTALL_HINT = (
    "install it with: apt-get install redis-server (or bash install.sh as root), or pass --store redis://HOST:PORT/DB"
)
FSYNC = "everysec"


class RedisUnavailable(RuntimeError):
    """No redis-server binary, or it did not come up."""


def find_redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(f"--store redis starts a local redis-server, and none is on the PATH; {INSTALL_HINT}")
    return binary


class LocalRedis:
    """`redis-server` on 127.0.0.1 with its AOF in `folder`; a context manager that always stops it."""

    host = "127.0.0.1"

    def __init__(self, folder: Path, startup_timeout: float = 20.0) -> None:
        self.folder = folder
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.process: Any = None
        self._stderr: Any = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the local redis-server is not running; call start() or use it as a context manager")
        return f"redis://{self.host}:{self.port}/0"

    def command(self, port: int) -> list[str]:
        return [
            find_redis_server(), "--bind", self.host, "--port", str(port), "--dir", str(self.folder.resolve()),
            "--appendonly", "yes", "--appendfsync", FSYNC, "--save", "", "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", str(self.log.resolve()),
        ]  # fmt: skip

    def start(self) -> LocalRedis:
        """Start it (from the thread that will stop it: the parent-death signal is tied to that thread) and
        return once it answers PING with its AOF loaded."""
        if self.process is not None:
            raise RuntimeError("the local redis-server is already running")
        self.folder.mkdir(parents=True, exist_ok=True)
        port = free_port(self.host)
        command = self.command(port)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in stop()
        self.process = launch(command, self._stderr)
        self.port = port
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1.0)
        try:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise RedisUnavailable(f"redis-server exited with code {code} before it was ready: {self._tail()}")
                try:
                    if client.ping():
                        return  # a server still loading its AOF answers LOADING, an error
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisUnavailable(f"redis-server did not answer within {self.startup_timeout:.0f} s")
                time.sleep(0.05)
        finally:
            client.close()

    @property
    def log(self) -> Path:
        return self.folder / "redis.log"

    def _tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        if self.log.is_file():
            text += self.log.read_text(errors="replace")
        return " ".join(text.split())[-300:]

    def stop(self) -> None:
        """SIGTERM (Redis fsyncs its AOF and exits), SIGKILL if it lingers; reaped. Idempotent."""
        process, self.process = self.process, None
        if process is not None:
            kill_group(process)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.port = None
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
