import pytest

from metropolis.memory import (
    LLAMA3_8B,
    ModelShape,
    StateKind,
    StateSpec,
    agent_state,
    kv_bytes_per_token,
    lora_bytes,
)


def test_llama3_8b_kv_is_128_kib_per_token():
    assert kv_bytes_per_token(layers=32, kv_heads=8, head_dim=128, dtype_bytes=2) == 128 * 1024
    assert LLAMA3_8B.kv_bytes_per_token == 131_072


def test_kv_formula_scales_with_every_factor():
    base = kv_bytes_per_token(2, 3, 5, 7)
    assert base == 2 * 2 * 3 * 5 * 7
    assert kv_bytes_per_token(4, 3, 5, 7) == 2 * base
    assert kv_bytes_per_token(2, 3, 5, 1) * 7 == base


def test_lora_rank16_on_attention_of_llama3_8b_is_26_mib():
    # q: 4096->4096, k: 4096->1024, v: 4096->1024, o: 4096->4096, per layer r (d_in + d_out) each
    per_layer = 16 * ((4096 + 4096) + (4096 + 1024) + (4096 + 1024) + (4096 + 4096))
    assert lora_bytes(LLAMA3_8B, 16) == per_layer * 32 * 2 == 26 * 2**20


def test_lora_on_all_linear_layers_adds_the_mlp():
    modules = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    mlp = 3 * (4096 + 14336)
    assert lora_bytes(LLAMA3_8B, 8, modules) == 8 * (26624 + mlp) * 32 * 2 == 40 * 2**20


def test_lora_rejects_bad_rank_and_module():
    with pytest.raises(ValueError, match="rank"):
        lora_bytes(LLAMA3_8B, 0)
    with pytest.raises(ValueError, match=r"unknown linear module 'qkv'.*q_proj"):
        lora_bytes(LLAMA3_8B, 8, ("qkv",))


def test_agent_state_holds_prefix_and_optional_adapter():
    kv, lora = agent_state(7, prefix_tokens=1000, lora_rank=16)
    assert kv == StateSpec(7, StateKind.KV_PREFIX, 1000 * 131_072, 1000)
    assert lora == StateSpec(7, StateKind.LORA, 26 * 2**20)
    assert [s.kind for s in agent_state(7, 10)] == [StateKind.KV_PREFIX]


def test_specs_and_shapes_validate():
    with pytest.raises(ValueError, match="token count"):
        StateSpec(1, StateKind.KV_PREFIX, 100)
    with pytest.raises(ValueError, match="size must be > 0"):
        StateSpec(1, StateKind.LORA, 0)
    with pytest.raises(ValueError, match="kv_heads must be > 0"):
        ModelShape("bad", layers=1, hidden=8, heads=1, kv_heads=0, head_dim=8, intermediate=8)
