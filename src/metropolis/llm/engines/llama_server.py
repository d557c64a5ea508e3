"""llama.cpp's own `llama-server` (not llama-cpp-python's), found on this machine and started on loopback.

It is the one engine here with a per-slot KV save/restore API (`POST /slots/{id}?action=save|restore|erase`, with
`--slot-save-path`); `llama_server_slots` drives that API and `metropolis.bench.slots` / `bench.slots_sim` time it.
The binary is found by `find_server` (llm/local_server.py): a path, $METROPOLIS_LLAMA_SERVER, the one
scripts/build-llama-server.sh built (install.sh runs it), or llama-server on the PATH. `--llm local` runs the
same binary with parallel slots (`LocalModelServer`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from metropolis.llm.local_server import (
    BUILT,
    ENV_VAR,
    LocalServerUnavailable,
    built_server,
    find_server,
    free_port,
    kill_group,
    server_env,
    smollm2_path,
    wait_until_ready,
)

__all__ = ["BUILT", "ENV_VAR", "LocalServerUnavailable", "RunningServer", "built_server", "find_server", "llama_server"]


@dataclass(frozen=True, slots=True)
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (/proc; 0 where there is none)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def llama_server(
    binary: Path,
    saves: str,
    *,
    slots: int = 1,
    ctx_per_slot: int = 2048,
    model: Path | None = None,
    extra: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """A llama-server on a free loopback port (one thread, `slots` slots, `--slot-save-path saves`), ready;
    its process group is killed when the block ends."""
    port = free_port()
    command = [
        str(binary), "-m", str(model or smollm2_path()), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(ctx_per_slot * slots), "-np", str(slots), "-t", "1", "-tb", "1", "--slot-save-path", saves,
        *extra,
    ]  # fmt: skip
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=server_env(binary),
    )  # fmt: skip
    running = RunningServer(server, f"http://127.0.0.1:{port}")
    try:
        wait_until_ready(server, f"{running.url}/health", 120.0, lambda: str(binary))
        yield running
    finally:
        kill_group(server)
