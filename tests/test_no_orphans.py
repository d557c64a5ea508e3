"""The local model server dies with whoever started it, however that one dies: kill -9 and SIGHUP included.

The stand-in child goes through the same launcher (`local_server.launch`) as the real server, so the parent-death
signal is tested on every machine; the real SmolLM2 server is tested where it is installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metropolis.llm.local_server import unavailable_reason

SRC = Path(__file__).resolve().parents[1] / "src"
MISSING = unavailable_reason()
needs_model = pytest.mark.skipif(MISSING is not None, reason=f"{MISSING}")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")

STAND_IN = (
    "import subprocess, sys, time\n"
    "from metropolis.llm.local_server import launch\n"
    "child = launch([sys.executable, '-c', 'import time; time.sleep(120)'], subprocess.DEVNULL)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)
REAL = (
    "import time\n"
    "from metropolis.llm.local_server import LocalModelServer\n"
    "s = LocalModelServer(n_ctx=256).start()\n"
    "print(s.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def alive(pid: int) -> bool:
    """Running, not a zombie (a killed child not yet reaped by PID 1 holds no memory)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def child_of_killed_parent(script: str, signum: int) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    assert parent.stdout is not None
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.send_signal(signum)
        parent.wait(30)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["kill-9", "sighup"])
def test_the_launched_child_dies_with_its_parent(signum: int) -> None:
    pid = child_of_killed_parent(STAND_IN, signum)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"child {pid} outlived its parent")


@pytest.mark.llm
@needs_model
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["kill-9", "sighup"])
def test_the_real_server_dies_with_its_parent(signum: int) -> None:
    pid = child_of_killed_parent(REAL, signum)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
        pytest.fail(f"llama server {pid} outlived its parent")
