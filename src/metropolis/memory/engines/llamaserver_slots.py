"""Measure per-agent KV save/restore through the real `llama-server` slot API, against recompute.

llama.cpp's own server (not llama-cpp-python's) exposes `POST /slots/{id}?action=save|restore|erase` when started
with `--slot-save-path`. This starts one on loopback with the SmolLM2 GGUF, and times, per repetition: a call that
recomputes the agent's prefix and suffix, a save, an erase (the agent evicted), a restore followed by a call with
a new suffix (only the suffix is evaluated, which the server's own `prompt_n` confirms), and a call while the KV is
still resident. The binary is found by `--server PATH` or $METROPOLIS_LLAMA_SERVER.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from metropolis.llm.calibration import random_words
from metropolis.llm.engines.llamacpp_slots import SlotClient
from metropolis.llm.local_server import free_port, kill_group, smollm2_path, wait_until_ready

ENV_VAR = "METROPOLIS_LLAMA_SERVER"


@dataclass(frozen=True, slots=True)
class SlotTimings:
    prefix_tokens: int
    recompute_ms: float  # prefix + suffix evaluated from scratch
    restore_ms: float  # the slot restore action alone (server's own timing)
    restored_call_ms: float  # a call right after the restore: only the new suffix is evaluated
    restored_prompt_n: int  # tokens the server evaluated for that call
    resident_call_ms: float  # the KV never left the slot
    save_ms: float
    repeats: int


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


def measure_slots(binary: Path, model: Path | None = None, prefix_words: int = 450, repeats: int = 5) -> SlotTimings:
    """Median timings over `repeats`; one server thread, one slot, on a free loopback port."""
    rng = random.Random(0)
    prefix = random_words(rng, prefix_words)
    with (
        tempfile.TemporaryDirectory() as saves,
        llama_server(binary, saves, model=model) as server,
        httpx.Client(base_url=server.url, timeout=300) as http,
    ):
        return _measure(http, prefix, rng, repeats)


def _call(http: httpx.Client, prompt: str) -> tuple[float, int, int]:
    """(wall ms, tokens evaluated, prompt tokens) of a one-token completion pinned to slot 0."""
    t0 = time.perf_counter()
    r = http.post("/completion", json={"prompt": prompt, "n_predict": 1, "cache_prompt": True, "id_slot": 0})
    r.raise_for_status()
    body = r.json()
    timings = body.get("timings", {})
    return (time.perf_counter() - t0) * 1000, int(timings.get("prompt_n", -1)), int(body.get("tokens_evaluated", 0))


def _measure(http: httpx.Client, prefix: str, rng: random.Random, repeats: int) -> SlotTimings:
    slots = SlotClient(http)
    suffix = lambda: " " + random_words(rng, 30)  # noqa: E731 - a fresh ~40-token tail
    _call(http, prefix + suffix())  # warm-up
    rec, res, rcall, rn, hit, save = [], [], [], [], [], []
    tokens = 0
    for _ in range(repeats):
        slots.erase(0)
        ms, _, tokens = _call(http, prefix + suffix())
        rec.append(ms)
        save.append(slots.save(0, "agent.bin").ms or 0.0)
        slots.erase(0)
        res.append(slots.restore(0, "agent.bin").ms or 0.0)
        ms, n, _ = _call(http, prefix + suffix())
        rcall.append(ms)
        rn.append(n)
        hit.append(_call(http, prefix + suffix())[0])
    med = statistics.median
    return SlotTimings(tokens, med(rec), med(res), med(rcall), int(med(rn)), med(hit), med(save), repeats)
