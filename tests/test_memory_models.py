"""Per-agent models as state: weights come from the host over PCIe, or from disk (the third tier) when host
memory is full; an engine without a host tier for models reloads them from disk; a prefetch still arriving
when its request comes makes the request wait, and is counted."""

import pytest

from metropolis.memory import LRUPolicy, MemoryManager, Place, StateKind, StateSpec, TierConfig, agent_state
from metropolis.memory.state import AGENT_MODELS, LLAMA32_1B, QWEN25_05B

GB = 10**9


def model(agent: int) -> StateSpec:
    return StateSpec(agent, StateKind.MODEL, GB)


def manager(gpu: int, host: int, **kw: object) -> MemoryManager:
    bandwidths = {"h2d_bandwidth": 4 * GB, "d2h_bandwidth": 4 * GB, "disk_bandwidth": GB}
    cfg = TierConfig(gpu_bytes=gpu, host_bytes=host, **bandwidths, **kw)
    return MemoryManager(cfg, LRUPolicy(), recompute=lambda tokens: 0.0)


def test_small_models_have_the_sizes_of_their_checkpoints() -> None:
    assert round(QWEN25_05B.weight_bytes / 1e9, 2) == 0.99 and round(LLAMA32_1B.weight_bytes / 1e9, 2) == 2.47
    assert set(AGENT_MODELS) == {"qwen2.5-0.5b", "llama3.2-1b"}
    specs = agent_state(3, 600, QWEN25_05B, own_model=True)
    assert [s.kind for s in specs] == [StateKind.MODEL, StateKind.KV_PREFIX]
    assert specs[1].nbytes == 600 * QWEN25_05B.kv_bytes_per_token
    assert [s.kind for s in agent_state(3, 0, QWEN25_05B, own_model=True)] == [StateKind.MODEL]
    with pytest.raises(ValueError, match="no private state"):
        agent_state(3, 0)


def test_a_model_comes_from_the_host_over_pcie_and_from_disk_when_the_host_is_full() -> None:
    mm = manager(gpu=GB, host=GB)
    mm.register([model(0)], Place.HOST)
    mm.register([model(1)])  # the host is full: on disk
    assert mm.admit(0, 0.0).ready_at == 0.25  # 1 GB at 4 GB/s
    mm.release(0, 0.25)
    adm = mm.admit(1, 1.0)  # copies 0 back to the host (0.25 s), then reads 1 from disk at 1 GB/s
    assert (adm.hit, adm.ready_at, adm.recompute_tokens) == (False, 2.25, 0)
    assert mm.entries_of(0)[0].place is Place.HOST
    assert mm.tiers.disk.bytes_moved == GB and mm.tiers.h2d.bytes_moved == GB


def test_without_a_host_tier_for_models_an_evicted_model_is_read_from_disk_again() -> None:
    mm = manager(gpu=GB, host=4 * GB, model_to_host=False)
    mm.register([model(0)])
    mm.register([model(1)])
    for t, agent in enumerate((0, 1, 0)):
        mm.admit(agent, 10.0 * t)
        mm.release(agent, 10.0 * t + 1)
    assert mm.tiers.host.used == 0 and mm.tiers.disk.bytes_moved == 3 * GB and mm.stats.hits == 0


class Soonest(LRUPolicy):
    def next_need(self, agent: int, now: float) -> float | None:
        return float(agent)


def test_a_prefetch_still_arriving_makes_the_request_wait_and_is_counted() -> None:
    cfg = TierConfig(gpu_bytes=GB, host_bytes=0, disk_bandwidth=GB)
    mm = MemoryManager(cfg, Soonest(), recompute=lambda tokens: 0.0)
    mm.register([model(0)])
    assert mm.prefetch(0.0, limit=1) == [0]  # from disk: on the GPU at 1.0
    adm = mm.admit(0, 0.4)
    assert adm.hit and adm.wait_s == pytest.approx(0.6)
    assert (mm.stats.late, mm.stats.late_wait_s) == (1, pytest.approx(0.6))
    mm.release(0, 2.0)
    assert mm.admit(0, 3.0).wait_s == 0 and mm.stats.late == 1
