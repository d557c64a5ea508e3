"""LoRA adapters written as GGUF for llama-server: the KV keys and tensor shapes its loader checks, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metropolis.llm.lora import AdapterSpec, BaseShape, write_adapter

gguf = pytest.importorskip("gguf", reason="the gguf package (pip install gguf==0.19.0) writes the adapters")

SHAPE = BaseShape("llama", 2, {"blk.0.attn_q.weight": (8, 8), "blk.1.attn_v.weight": (8, 4)})


def test_an_adapter_has_the_keys_and_the_shapes_llama_cpp_checks(tmp_path: Path) -> None:
    path = write_adapter(tmp_path / "a.gguf", SHAPE, AdapterSpec(rank=2, alpha=2.0), 0)
    reader = gguf.GGUFReader(path)
    kv = {name: reader.fields[name].contents() for name in ("general.architecture", "general.type", "adapter.type")}
    assert kv == {"general.architecture": "llama", "general.type": "adapter", "adapter.type": "lora"}
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(2.0)
    # ggml order (ne): lora_a is (in, rank), lora_b is (rank, out)
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    assert shapes == {
        "blk.0.attn_q.weight.lora_a": [8, 2], "blk.0.attn_q.weight.lora_b": [2, 8],
        "blk.1.attn_v.weight.lora_a": [8, 2], "blk.1.attn_v.weight.lora_b": [2, 4],
    }  # fmt: skip
    assert not list(tmp_path.glob(".*.tmp"))  # written to a temporary name, then renamed


def test_adapters_are_seeded_small_and_distinct(tmp_path: Path) -> None:
    def weights(index: int, seed: int = 0) -> np.ndarray:
        path = write_adapter(tmp_path / f"{index}-{seed}.gguf", SHAPE, AdapterSpec(rank=2, seed=seed), index)
        return np.concatenate([np.asarray(t.data).ravel() for t in gguf.GGUFReader(path).tensors])

    assert np.array_equal(weights(0), weights(0))
    assert not np.array_equal(weights(0), weights(1)) and not np.array_equal(weights(0), weights(0, seed=1))
    assert np.abs(weights(0)).max() < 2.0


def test_a_spec_names_its_file_by_every_field_and_refuses_nonsense() -> None:
    assert AdapterSpec().name(3) == "lora-r4-a4-s0.1-attn_q+attn_v-seed0-3.gguf"
    assert AdapterSpec(rank=8).name(3) != AdapterSpec().name(3)
    with pytest.raises(ValueError, match="rank >= 1"):
        AdapterSpec(rank=0)
