"""Failures at run time: an unusable endpoint is one line and exit code 3 in seconds, before any run folder; a
failing step is one line and exit code 3 with the folder's meta.json saying so; Ctrl-C is exit 130 saying where
the run stopped; two runs started together never share a folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.cli.main import app
from metropolis.paths import shared_data_dir
from tests.fault_server import Arrival, Fault, FaultServer

runner = CliRunner()
needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")
SRC = Path(__file__).resolve().parents[1] / "src"
SECRET = "sk-test-0123456789abcdef"


class Stub:
    """A loopback HTTP server that answers every request with one status, content type and body (or never)."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json", hang: bool = False) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if stub.hang:
                    time.sleep(5)
                    return
                self.send_response(stub.status)
                self.send_header("Content-Type", stub.content_type)
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

            def log_message(self, *args: object) -> None:
                pass

        self.status, self.body, self.content_type, self.hang = status, body, content_type, hang
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ENDPOINTS = {
    "refused": None,
    "not-openai-404": (404, b"<html>not found</html>", "text/html", False),
    "html-200": (200, b"<html>hello</html>", "text/html", False),
    "unauthorized-401": (401, json.dumps({"error": f"bad key {SECRET}"}).encode(), "application/json", False),
    "server-error-503": (503, b"{}", "application/json", False),
    "never-answers": (200, b"{}", "application/json", True),
    "https-to-http": (200, b"{}", "application/json", False),
}


@pytest.fixture(params=sorted(ENDPOINTS))
def bad_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    spec = ENDPOINTS[request.param]
    if spec is None:
        yield f"http://127.0.0.1:{closed_port()}/v1"
        return
    stub = Stub(*spec)
    try:
        yield stub.url.replace("http://", "https://") if request.param == "https-to-http" else stub.url
    finally:
        stub.close()


@pytest.mark.parametrize("command", ["run", "calibrate"])
def test_an_unusable_endpoint_is_one_line_exit_3_and_no_folder(
    command: str, bad_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    started = time.monotonic()
    args = [command, "--llm", bad_endpoint, "--kind", "openai", "--timeout", "1"]
    result = runner.invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 3, result.output
    assert len(lines) == 1 and lines[0].startswith("metropolis: failed: "), lines
    assert "/v1/models" in lines[0] and "Traceback" not in result.output
    assert SECRET not in result.output
    assert time.monotonic() - started < 8
    assert list(tmp_path.iterdir()) == []


def test_a_key_over_plain_http_to_another_host_is_one_warning() -> None:
    from metropolis.llm.api_key import is_loopback, plain_http_warning

    env = {"OPENAI_API_KEY": SECRET}
    warning = plain_http_warning("http://10.1.2.3:8000/v1", "OPENAI_API_KEY", env)
    assert warning is not None and "10.1.2.3" in warning and SECRET not in warning and "\n" not in warning
    for quiet in ("https://10.1.2.3/v1", "http://127.0.0.1:8000/v1", "http://localhost/v1", "http://[::1]:80/v1"):
        assert plain_http_warning(quiet, "OPENAI_API_KEY", env) is None, quiet
    assert plain_http_warning("http://10.1.2.3/v1", "OPENAI_API_KEY", {}) is None
    assert plain_http_warning("http://10.1.2.3/v1", None, env) is None
    assert is_loopback("http://127.5.0.1/v1") and not is_loopback("http://example.com/v1")


@pytest.mark.parametrize(
    "key", [f"{SECRET}\n", f"{SECRET}\r", f"sk {SECRET}", f"{SECRET}\x00", f"{SECRET}\x7f", f"{SECRET}é", "\t" + SECRET]
)
def test_a_bad_key_is_refused_without_printing_it(key: str) -> None:
    from metropolis.llm.api_key import read_api_key

    with pytest.raises(ValueError, match=r"\$OPENAI_API_KEY holds") as caught:
        read_api_key("OPENAI_API_KEY", {"OPENAI_API_KEY": key})
    assert SECRET not in str(caught.value) and "\n" not in str(caught.value)


def test_retries_are_reported_as_they_happen() -> None:
    import asyncio

    from metropolis.llm.client import OpenAIClient
    from metropolis.llm.endpoints import endpoint
    from metropolis.llm.types import LLMRequest

    seen: list[str] = []
    with FaultServer(lambda a: Fault.ERROR_503 if a.attempt < 2 else Fault.OK) as server:
        cfg = endpoint("vllm", server.base_url, "m", api_key_env=None, backoff_base=0.01, max_attempts=4)

        async def go() -> None:
            async with OpenAIClient(cfg, on_retry=seen.append) as client:
                await client.complete(LLMRequest("ann", 3, "plan", ({"role": "user", "content": "hi"},)))

        asyncio.run(go())
    assert len(seen) == 2 and all("HTTP 503" in s and "ann step 3" in s for s in seen)


def _cli(args: list[str], cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "METROPOLIS_SHARED": str(shared_data_dir(required=False))}
    return subprocess.Popen(
        [sys.executable, "-m", "metropolis.cli.main", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


@needs_data
def test_a_failing_step_is_one_line_exit_3_and_recorded_in_meta(tmp_path: Path) -> None:
    def rejects_chats(arrival: Arrival) -> Fault:
        return Fault.OK if arrival.step is None else Fault.BAD_REQUEST  # GET /models passes

    with FaultServer(rejects_chats) as server:
        proc = _cli(["run", "--llm", server.base_url, "-n", "2", "--hours", "0.01", "--out", "r"], tmp_path)
        _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 3, err
    assert len(lines) == 1 and lines[0].startswith("metropolis: failed: step "), lines
    assert "never awaited" not in err and "Traceback" not in err
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["status"] == "failed" and "HTTP 400" in meta["error"]


@needs_data
@pytest.mark.parametrize(
    ("signum", "code", "how"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_says_where_the_run_stopped_and_exits_130(signum: int, code: int, how: str, tmp_path: Path) -> None:
    proc = _cli(["run", "--hours", "24", "--out", "r"], tmp_path)
    meta = tmp_path / "r" / "meta.json"
    deadline = time.monotonic() + 60
    while not meta.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith(f"metropolis: {how} after "), lines
    assert "Traceback" not in err and "never awaited" not in err
    record = json.loads(meta.read_text())
    assert record["status"] == how and 0 < record["agent_steps_done"] < record["agent_steps"]
    assert (tmp_path / "r" / "trace" / "meta.json").is_file()


@needs_data
def test_two_runs_started_together_never_share_a_folder(tmp_path: Path) -> None:
    import pandas as pd

    procs = [_cli(["run", "-n", "3", "--hours", "0.05"], tmp_path) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert json.loads((folder / "meta.json").read_text())["status"] == "completed"
        assert json.loads((folder / "report.json").read_text())["agent_steps"] == 3 * 18
        assert len(pd.read_parquet(folder / "trace" / "steps.parquet")) == 3 * 18


@needs_data
def test_force_replaces_an_earlier_run_and_nothing_of_it_stays(tmp_path: Path) -> None:
    out = tmp_path / "r"
    (out / "trace").mkdir(parents=True)
    (out / "accounting.json").write_text("{}")
    (out / "timeline.md").write_text("old")
    refused = runner.invoke(app, ["run", "-n", "2", "--hours", "0.01", "--out", str(out)])
    assert refused.exit_code == 2 and "--force" in refused.stderr
    result = runner.invoke(app, ["run", "-n", "2", "--hours", "0.01", "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "accounting.json",
        "meta.json",
        "report.html",
        "report.json",
        "store.sqlite",
        "trace",
    ]
    assert (out / "accounting.json").read_text() != "{}"  # this run's books, not the old ones


@needs_data
def test_a_stop_while_the_report_is_written_is_recorded_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM after the last agent-step, while the report files are written: meta.json says "terminated" (not
    "running"), the line says how to go on, and `metropolis resume` writes the report."""
    from metropolis.cli import run_report
    from metropolis.cli.errors import Terminated

    write = run_report.write

    def stopped(*args: object, **kwargs: object) -> None:
        raise Terminated()

    out = tmp_path / "r"
    monkeypatch.setattr(run_report, "write", stopped)
    result = runner.invoke(app, ["run", "-n", "2", "--hours", "0.01", "--out", str(out)])
    assert result.exit_code == 143, result.output
    assert "terminated while writing the report, after every agent-step" in result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "terminated" and meta["agent_steps_done"] == meta["agent_steps"]
    assert not (out / "report.json").exists()
    monkeypatch.setattr(run_report, "write", write)
    resumed = runner.invoke(app, ["resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "meta.json").read_text())["status"] == "completed"
    assert (out / "report.json").is_file()
