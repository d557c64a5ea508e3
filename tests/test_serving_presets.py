"""Presets: every one valid, sized by replicas, and ordered as the hardware says."""

from __future__ import annotations

import pytest

from metropolis.llm.serving import PRESETS, preset, single_request_latency
from metropolis.llm.serving.presets import LLAMA3_8B, LLAMA3_70B


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_scales_by_replicas(name: str) -> None:
    cfg = preset(name, gpus=3)
    assert cfg.name == name and cfg.replicas == 3
    assert cfg.gpus == 3 * cfg.gpus_per_replica
    assert cfg.kv_capacity_tokens >= 643 + 22
    assert 0 < single_request_latency(cfg, 643, 22) < 5


def test_model_shapes_give_kv_bytes_per_token() -> None:
    assert LLAMA3_8B.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == preset("l4-llama3-8b").kv_bytes_per_token
    assert LLAMA3_70B.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2


def test_faster_hardware_is_faster_and_bigger_models_slower() -> None:
    lat = {name: single_request_latency(preset(name), 643, 22) for name in PRESETS}
    assert lat["h100-llama3-8b"] < lat["a100-llama3-8b"] < lat["l4-llama3-8b"]
    assert lat["h100-llama3-70b-tp4"] < lat["a100-llama3-70b-tp4"]
    assert lat["a100-llama3-8b"] < lat["a100-llama3-70b-tp4"]
    assert preset("l4-llama3-8b").kv_capacity_tokens < preset("a100-llama3-8b").kv_capacity_tokens


def test_tensor_parallel_presets_count_groups() -> None:
    cfg = preset("h100-llama3-70b-tp4", gpus=2)
    assert (cfg.replicas, cfg.gpus_per_replica, cfg.gpus) == (2, 4, 8)


def test_overrides_and_bad_names() -> None:
    cfg = preset("a100-llama3-8b", routing="affinity", queue="fcfs")
    assert (cfg.routing, cfg.queue) == ("affinity", "fcfs")
    with pytest.raises(ValueError, match="choose one of: l4-llama3-8b, a100-llama3-8b"):
        preset("v100-llama3-8b")
    with pytest.raises(ValueError, match="replicas must be an integer >= 1"):
        preset("l4-llama3-8b", gpus=0)
