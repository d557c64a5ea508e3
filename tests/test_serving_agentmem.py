"""Agent memory in the serving model: off is bit-for-bit the old model; hits skip the prefix, misses pay."""

from __future__ import annotations

import math

import pytest

from metropolis.bench.memory_workload import bursty_simulation
from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, CostModel, Job, ServingConfig, VirtualLLM
from metropolis.llm.serving.agentmem import AgentMemory
from metropolis.memory import LRUPolicy, TierConfig
from metropolis.memory.state import ModelShape
from metropolis.runtime.virtual import VirtualRuntime

COST = CostModel(c0=0.010, c_prefill=0.001, c_decode=0.0, c_kv=0.0)
CFG = ServingConfig(name="t", cost=COST, kv_capacity_tokens=100_000, max_batched_tokens=4096)
# 2 bytes of KV per token: a 500-token prefix is 1,000 bytes, 0.25 s over a 4,000 B/s link, 0.5 s to recompute.
TINY = ModelShape("tiny", layers=1, hidden=4, heads=1, kv_heads=1, head_dim=1, intermediate=4, dtype_bytes=1)


def setup(gpu: int, host: int, policy: str = "lru", h2d: float = 4000.0) -> AgentMemory:
    tiers = TierConfig(gpu_bytes=gpu, host_bytes=host, h2d_bandwidth=h2d, d2h_bandwidth=h2d)
    return AgentMemory(tiers, prefix_tokens=500, policy=policy, shape=TINY, prefetch=0)


def run_jobs(cluster: Cluster, env: Environment, arrivals: list[tuple[float, int]]) -> list[Job]:
    """(time, agent) arrivals of 600-token prompts with one output token; the jobs in arrival order."""
    jobs = [Job(f"a{agent}", 600, 1, agent_id=agent) for _, agent in arrivals]
    for (t, _), job in zip(arrivals, jobs, strict=True):
        env.schedule(t, cluster.submit, job)
    env.run()
    return jobs


def test_hit_prefills_only_the_suffix_and_a_host_miss_waits_for_the_link() -> None:
    env = Environment()
    cluster = Cluster(env, CFG, memory=setup(gpu=2000, host=10_000))
    a, b, c = run_jobs(cluster, env, [(0.0, 0), (10.0, 0), (20.0, 1)])
    # first call: 0.25 s for the prefix to arrive, then the 100-token suffix
    assert (a.admitted, a.prefill_tokens, a.finished) == (0.25, 100, pytest.approx(0.25 + 0.010 + 0.1))
    assert (b.admitted, b.prefill_tokens, b.finished) == (10.0, 100, pytest.approx(10.110))  # hit
    assert c.finished == pytest.approx(20.36)
    stats = cluster.memory_stats()
    assert stats is not None and (stats.admissions, stats.hits, stats.bytes_in) == (3, 1, 2000)


def test_without_a_host_tier_a_miss_recomputes_the_prefix_in_the_prefill() -> None:
    env = Environment()
    cluster = Cluster(env, CFG, memory=setup(gpu=1000, host=0))
    a, b, c = run_jobs(cluster, env, [(0.0, 0), (10.0, 1), (20.0, 0)])
    assert [j.prefill_tokens for j in (a, b, c)] == [600, 600, 600]  # agent 1 evicted agent 0: dropped
    assert a.finished == pytest.approx(0.010 + 0.6)
    stats = cluster.memory_stats()
    assert stats is not None and (stats.hits, stats.recompute_tokens) == (0, 1500)


def test_pinned_state_holds_the_queue_until_the_request_finishes() -> None:
    env = Environment()
    cluster = Cluster(env, CFG, memory=setup(gpu=1000, host=0))
    a, b = run_jobs(cluster, env, [(0.0, 0), (0.0, 1)])
    assert b.admitted == pytest.approx(a.finished)  # one agent's state fits: they run one after the other


def test_no_memory_is_bit_for_bit_the_old_model() -> None:
    def run(memory: AgentMemory | None) -> list[tuple[float | None, float | None, float]]:
        sim = bursty_simulation(6, 12, "metropolis", seed=3)
        env = Environment()
        llm = VirtualLLM(env, Cluster(env, CFG, memory=memory))
        VirtualRuntime(sim, env, llm).run()
        return [(r.admitted, r.first_token, r.end) for r in llm.responses]

    old = run(None)
    assert old and old == run(None)
    everything = setup(gpu=10**9, host=0)
    with_mem = run(everything)
    assert len(with_mem) == len(old) and with_mem != old  # memory on changes times (prefix hits)


def test_prefetch_moves_the_nearest_agent_while_the_gpu_computes() -> None:
    env = Environment()
    distances = {0: 5.0, 1: 1.0}
    memory = AgentMemory(
        TierConfig(gpu_bytes=1000, host_bytes=10_000, h2d_bandwidth=4000.0, d2h_bandwidth=4000.0),
        prefix_tokens=500,
        policy="invocation-distance",
        distance=lambda agent: distances.get(agent, math.inf),
        shape=TINY,
        prefetch=1,
    )
    cluster = Cluster(env, CFG, memory=memory)
    _, a, b = run_jobs(cluster, env, [(0.0, 1), (1.0, 0), (5.0, 1)])
    # after agent 0's request, agent 1 (needed sooner) is prefetched back: its next call hits
    stats = cluster.memory_stats()
    assert stats is not None and (stats.hits, stats.prefetch_hits) == (1, 1)
    assert (b.admitted, b.prefill_tokens, b.finished) == (5.0, 100, pytest.approx(5.110))
    assert a.prefill_tokens == 100


def test_agent_memory_checks_its_setup() -> None:
    with pytest.raises(ValueError, match="needs distance"):
        AgentMemory(TierConfig(gpu_bytes=10), 5)
    with pytest.raises(ValueError, match="no prefix_tokens for agent 3"):
        AgentMemory(TierConfig(gpu_bytes=10), {1: 5}, policy="lru").states(3)
    assert LRUPolicy().name == "lru"


def two_agent_setup(**engine: str) -> AgentMemory:
    """Two agents' state fits the GPU; the host holds everything, 0.25 s per prefix over the link."""
    tiers = TierConfig(gpu_bytes=2000, host_bytes=10_000, h2d_bandwidth=4000.0, d2h_bandwidth=4000.0)
    return AgentMemory(tiers, prefix_tokens=500, policy="lru", shape=TINY, prefetch=0, **engine)


def test_a_blocking_demand_load_stalls_everyone_an_overlapped_one_does_not() -> None:
    def run(mode: str) -> tuple[Job, Job]:
        env = Environment()
        cluster = Cluster(env, CFG, memory=two_agent_setup(demand_loads=mode))
        long, short = Job("a0", 600, 50, agent_id=0), Job("a1", 600, 1, agent_id=1)
        env.schedule(0.0, cluster.submit, long)
        env.schedule(0.5, cluster.submit, short)  # while agent 0 decodes; agent 1's prefix is on the host
        env.run()
        return long, short

    overlap_long, overlap_short = run("overlap")
    blocking_long, blocking_short = run("blocking")
    assert overlap_short.admitted == pytest.approx(0.75)  # after its 0.25 s transfer (an iteration boundary)
    assert blocking_short.admitted == pytest.approx(0.50, abs=0.01)  # at once, but the batch waits for it
    # the decoding request lost the 0.25 s transfer (overlap: only the short one's prefill)
    assert blocking_long.finished - overlap_long.finished == pytest.approx(0.25, abs=0.011)


def test_cache_aware_admission_lets_a_resident_request_pass_a_blocked_head() -> None:
    def run(admission: str) -> list[Job]:
        env = Environment()
        tiers = TierConfig(gpu_bytes=1000, host_bytes=10_000, h2d_bandwidth=4000.0, d2h_bandwidth=4000.0)
        memory = AgentMemory(tiers, 500, policy="lru", shape=TINY, prefetch=0, admission=admission)
        cluster = Cluster(env, CFG, memory=memory)
        jobs = [Job("a0", 600, 50, agent_id=0), Job("a1", 600, 1, agent_id=1), Job("a0", 600, 1, agent_id=0)]
        for t, job in zip((0.0, 0.4, 0.4), jobs, strict=True):
            env.schedule(t, cluster.submit, job)
        env.run()
        return jobs

    first, head, resident = run("fcfs")
    assert resident.admitted > head.admitted >= first.finished  # agent 1 cannot come in while 0 is pinned
    first, head, resident = run("lpm")
    assert resident.admitted < first.finished <= head.admitted  # agent 0's next call passes the blocked head
    with pytest.raises(ValueError, match="admission 'sjf'"):
        AgentMemory(TierConfig(gpu_bytes=10), 5, policy="lru", admission="sjf")
