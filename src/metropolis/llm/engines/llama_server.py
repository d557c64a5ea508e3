"""llama.cpp's own `llama-server` (not llama-cpp-python's), found on this machine and started on loopback.

It is the one engine here with a per-slot KV save/restore API (`POST /slots/{id}?action=save|restore|erase`, with
`--slot-save-path`); `llama_server_slots` drives that API and `metropolis.bench.slots` / `bench.slots_sim` time it.
The binary is found by a path, $METROPOLIS_LLAMA_SERVER, or the one scripts/build-llama-server.sh built.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from metropolis.llm.local_server import free_port, kill_group, smollm2_path, wait_until_ready

ENV_VAR = "METROPOLIS_LLAMA_SERVER"


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


BUILT = Path(".llama-server") / "bin" / "llama-server"  # where scripts/build-llama-server.sh installs it


def built_server() -> Path | None:
    """The binary scripts/build-llama-server.sh built, beside the working directory or the source checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[4]):
        if (root / BUILT).is_file():
            return root / BUILT
    return None


def find_server(path: str | None = None) -> Path:
    """`path`, else $METROPOLIS_LLAMA_SERVER, else the one scripts/build-llama-server.sh built."""
    candidate = path or os.environ.get(ENV_VAR) or built_server()
    if not candidate:
        raise FileNotFoundError(
            f"no llama-server binary: set ${ENV_VAR}, or build one with scripts/build-llama-server.sh"
        )
    binary = Path(candidate)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"{binary}: not an executable llama-server binary")
    return binary


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
    # A build's shared libraries sit beside the binary; its RPATH may point at a build folder long gone.
    libs = os.pathsep.join(filter(None, [str(binary.parent), os.environ.get("LD_LIBRARY_PATH", "")]))
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "LD_LIBRARY_PATH": libs},
    )  # fmt: skip
    running = RunningServer(server, f"http://127.0.0.1:{port}")
    try:
        wait_until_ready(server, f"{running.url}/health", 120.0, lambda: str(binary))
        yield running
    finally:
        kill_group(server)
