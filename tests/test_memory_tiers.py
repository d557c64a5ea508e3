import pytest

from metropolis.kernel import Environment
from metropolis.memory import (
    InvocationDistancePolicy,
    Link,
    LRUPolicy,
    MemoryManager,
    Place,
    StateKind,
    StateSpec,
    TableEstimator,
    Tier,
    TierConfig,
)
from metropolis.memory.tiers import Entry

GB = 10**9


def kv(agent: int, nbytes: int = GB, tokens: int = 1000) -> StateSpec:
    return StateSpec(agent, StateKind.KV_PREFIX, nbytes, tokens)


def manager(gpu: int, host: int = 10 * GB, policy=None, recompute=lambda t: 1e9, bw: float = GB):
    """Tiers with every link at `bw` bytes/s except the disk (a quarter of it)."""
    cfg = TierConfig(gpu_bytes=gpu, host_bytes=host, h2d_bandwidth=bw, d2h_bandwidth=bw, disk_bandwidth=bw / 4)
    return MemoryManager(cfg, policy or LRUPolicy(), recompute)


def test_link_is_a_fifo_pipe():
    link = Link("pcie", bandwidth=GB)
    assert link.reserve(GB, 0.0) == 1.0
    assert link.reserve(GB // 2, 0.5) == 1.5  # queued behind the first transfer
    assert link.finish_time(GB, 3.0) == 4.0  # an idle link starts at once
    assert link.busy_until == 1.5 and link.bytes_moved == GB + GB // 2


def test_tier_capacity_is_enforced():
    tier = Tier("gpu", capacity=100)
    tier.add(Entry(StateSpec(0, StateKind.LORA, 60)))
    with pytest.raises(RuntimeError, match="60 bytes of agent 1 do not fit in 40 free"):
        tier.add(Entry(StateSpec(1, StateKind.LORA, 60)))
    with pytest.raises(ValueError, match="capacity"):
        Tier("host", capacity=-1)


def test_hit_and_host_transfer_timing():
    mm = manager(gpu=3 * GB)
    mm.register([kv(0)], Place.HOST)
    adm = mm.admit(0, now=2.0)
    assert (adm.hit, adm.ready_at, adm.wait_s, adm.bytes_in) == (False, 3.0, 1.0, GB)
    assert mm.tiers.host.used == 0 and mm.resident(0)
    mm.release(0, 3.0)
    again = mm.admit(0, now=5.0)
    assert (again.hit, again.wait_s, again.bytes_in) == (True, 0.0, 0)
    assert mm.stats.hits == 1 and mm.stats.admissions == 2


def test_pinned_state_is_never_evicted_and_eviction_waits_for_the_offload():
    mm = manager(gpu=2 * GB)
    mm.register([kv(0), kv(1), kv(2)], Place.HOST)
    mm.admit(0, 0.0)
    mm.admit(1, 1.0)
    assert not mm.can_admit(2)
    with pytest.raises(RuntimeError, match="check can_admit"):
        mm.admit(2, 2.0)
    mm.release(0, 10.0)
    assert mm.can_admit(2)
    adm = mm.admit(2, 10.0)
    assert adm.evicted == ((0, StateKind.KV_PREFIX),)
    assert adm.ready_at == 12.0  # 10 -> 11 offload of agent 0, 11 -> 12 load of agent 2
    assert mm.entries_of(0)[0].place is Place.HOST and mm.stats.bytes_out == GB


def test_release_more_than_admitted_is_misuse():
    mm = manager(gpu=GB)
    mm.register([kv(0)])
    with pytest.raises(RuntimeError, match="released more often"):
        mm.release(0, 0.0)
    with pytest.raises(RuntimeError, match="agent 9 has no registered state"):
        mm.admit(9, 0.0)


def test_register_validates():
    mm = manager(gpu=GB)
    with pytest.raises(ValueError, match="exceed the GPU tier"):
        mm.register([kv(0, 2 * GB)])
    mm.register([kv(1)])
    with pytest.raises(ValueError, match="already has kv state"):
        mm.register([kv(1)])


def test_recompute_is_chosen_when_cheaper_than_the_transfer():
    cheap = manager(gpu=2 * GB, recompute=lambda tokens: tokens * 1e-4)  # 1000 tokens: 0.1 s < 1 s transfer
    cheap.register([kv(0)], Place.HOST)
    adm = cheap.admit(0, 0.0)
    assert (adm.recompute_tokens, adm.recompute_s, adm.ready_at, adm.bytes_in) == (1000, 0.1, 0.0, 0)
    assert cheap.tiers.host.used == 0 and cheap.tiers.h2d.bytes_moved == 0
    dear = manager(gpu=2 * GB, recompute=lambda tokens: 10.0)
    dear.register([kv(0)], Place.HOST)
    assert dear.admit(0, 0.0).recompute_tokens == 0


def test_state_found_nowhere_is_recomputed_or_read_from_disk():
    mm = manager(gpu=4 * GB, recompute=lambda tokens: tokens * 1e-3)
    mm.register([kv(0, tokens=500), StateSpec(0, StateKind.LORA, GB // 2)])
    adm = mm.admit(0, 1.0)
    assert adm.recompute_tokens == 500 and adm.recompute_s == 0.5
    assert adm.ready_at == 3.0  # half a GB over a 0.25 GB/s disk link
    assert mm.tiers.disk.bytes_moved == GB // 2


def test_host_keeps_what_the_policy_ranks_higher():
    mm = manager(gpu=GB, host=GB)
    mm.register([kv(0), kv(1), kv(2)])
    for t, agent in enumerate((0, 1, 2)):
        mm.admit(agent, float(t))
        mm.release(agent, float(t))
    places = [mm.entries_of(a)[0].place for a in range(3)]
    assert places == [Place.NONE, Place.HOST, Place.GPU]  # 0 (least recent) was dropped for 1


def test_prefetch_never_evicts_a_more_urgent_agent():
    table = TableEstimator({0: 1.0, 1: 5.0})
    mm = manager(gpu=GB, policy=InvocationDistancePolicy(table.distance))
    mm.register([kv(0)], Place.GPU)
    mm.register([kv(1)], Place.HOST)
    assert mm.prefetch(0.0) == []
    assert mm.entries_of(0)[0].place is Place.GPU
    table.update({1: 0.5})
    assert mm.prefetch(0.0) == [1]
    assert [mm.entries_of(a)[0].place for a in (0, 1)] == [Place.HOST, Place.GPU]


def test_lru_does_not_prefetch():
    mm = manager(gpu=2 * GB)
    mm.register([kv(0)], Place.HOST)
    assert mm.prefetch(0.0) == []


def _prefetch_then_compute(compute_s: float, prefetch: bool) -> tuple[float, bool, int]:
    """On the kernel clock: prefetch agent 1, let the GPU compute for `compute_s`, then admit agent 1."""
    env = Environment()
    mm = manager(gpu=2 * GB, policy=InvocationDistancePolicy(TableEstimator({1: 1.0}).distance))
    mm.register([kv(1)], Place.HOST)
    out: list = []

    async def serve() -> None:
        if prefetch:
            assert mm.prefetch(env.now) == [1]
        await env.timeout(compute_s)
        adm = mm.admit(1, env.now)
        await env.timeout(adm.wait_s)
        out.append((env.now, adm.hit, mm.stats.prefetch_hits))

    env.process(serve())
    env.run()
    return out[0]


def test_prefetch_overlaps_compute_on_the_kernel_clock():
    assert _prefetch_then_compute(2.0, prefetch=True) == (2.0, True, 1)  # the 1 s transfer hid behind compute
    assert _prefetch_then_compute(0.25, prefetch=True) == (1.0, True, 1)  # partly hidden: waits 0.75 s
    assert _prefetch_then_compute(2.0, prefetch=False) == (3.0, False, 0)  # on demand: waits the full 1 s


def test_without_kv_on_the_host_an_evicted_prefix_is_dropped_and_adapters_pay_their_setup():
    cfg = TierConfig(gpu_bytes=GB, host_bytes=10 * GB, h2d_bandwidth=GB, kv_to_host=False, lora_load_s=0.025)
    mm = MemoryManager(cfg, LRUPolicy(), lambda tokens: 0.5)
    lora = StateSpec(0, StateKind.LORA, GB // 2)
    mm.register([lora], Place.HOST)
    mm.register([kv(0, GB // 2)], Place.NONE)
    mm.register([kv(1, GB)], Place.NONE)
    first = mm.admit(0, 0.0)  # adapter from the host: its bytes (0.5 s) and 25 ms of setup; prefix recomputed
    assert (first.ready_at, first.recompute_tokens) == (pytest.approx(0.525), 1000)
    mm.release(0, 1.0)
    mm.admit(1, 2.0)  # evicts both of agent 0's entries
    places = {e.spec.kind: e.place for e in mm.entries_of(0)}
    assert places == {StateKind.KV_PREFIX: Place.NONE, StateKind.LORA: Place.HOST}
    assert mm.stats.bytes_out == GB // 2  # only the adapter went to the host
