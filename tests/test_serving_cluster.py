"""Replicas behind a router: which replica each request lands on, and what the cluster reports."""

from __future__ import annotations

import zlib

import pytest

from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, CostModel, Job, ServingConfig, make_router

COST = CostModel(c0=0.010, c_prefill=0.0001, c_decode=0.0005, c_kv=0.00001)


def cluster(routing: str, replicas: int = 3) -> tuple[Environment, Cluster]:
    env = Environment()
    cfg = ServingConfig(
        "t", COST, kv_capacity_tokens=50_000, max_batched_tokens=4096, replicas=replicas, routing=routing
    )
    return env, Cluster(env, cfg)


def test_round_robin_takes_replicas_in_turn() -> None:
    env, cl = cluster("round_robin")
    jobs = [Job(f"a{i}", 100, 5) for i in range(7)]
    for job in jobs:
        cl.submit(job)
    env.run()
    assert [j.replica for j in jobs] == [0, 1, 2, 0, 1, 2, 0]


def test_least_loaded_picks_fewest_outstanding_tokens() -> None:
    env, cl = cluster("least_loaded")
    big, small, third, fourth = Job("a", 1000, 50), Job("b", 100, 5), Job("c", 100, 5), Job("d", 10, 1)
    for job in (big, small, third, fourth):
        cl.submit(job)
    # big -> 0; small -> 1 (0 has 1,050 outstanding); third -> 2; fourth: 1 and 2 tie at 105, lowest index
    assert [j.replica for j in (big, small, third, fourth)] == [0, 1, 2, 1]
    env.run()
    assert cl.completed == 4


def test_affinity_keeps_an_agent_on_one_replica() -> None:
    env, cl = cluster("affinity", replicas=4)
    jobs = [Job(name, 100, 5) for name in ("Isabella", "Klaus", "Maria", "Isabella", "Klaus", "Isabella")]
    for job in jobs:
        cl.submit(job)
    env.run()
    for job in jobs:
        assert job.replica == zlib.crc32(job.agent.encode()) % 4
    assert len({j.replica for j in jobs if j.agent == "Isabella"}) == 1


def test_more_replicas_serve_a_burst_sooner() -> None:
    ends = {}
    for n in (1, 4):
        env, cl = cluster("round_robin", replicas=n)
        jobs = [Job(f"a{i}", 600, 30) for i in range(16)]
        for job in jobs:
            cl.submit(job)
        env.run()
        ends[n] = max(j.finished or 0.0 for j in jobs)
    assert ends[4] < ends[1]


def test_utilisation_and_batch_size_are_time_weighted() -> None:
    env, cl = cluster("round_robin", replicas=1)
    cl.submit(Job("a", 100, 10))
    cl.submit(Job("b", 100, 10))
    env.run()
    assert cl.utilisation() == pytest.approx(1.0)
    assert cl.mean_batch_size() == pytest.approx(2.0)
    env.run(until=2 * env.now)
    assert cl.utilisation() == pytest.approx(0.5)


def test_unknown_router_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="affinity, least_loaded, round_robin"):
        make_router("random")
    with pytest.raises(ValueError, match="unknown routing policy 'fastest'"):
        cluster("fastest")
