"""A Ray node lost mid-run (`ray.cluster_utils.Cluster`: a head and a second raylet on this machine): the workers
on it die with it, their units are dispatched again to a replacement on the node that is left, answered calls
come from the journal inbox (which lives on the controller's node), and the run ends as if nothing happened."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

pytest.importorskip("ray")

import ray
from ray.cluster_utils import Cluster

from metropolis.llm.endpoints import EndpointConfig
from metropolis.runtime.ray import RayRuntime, WorkerPool
from tests.fault_server import FaultServer
from tests.scenarios import outcome
from tests.test_ray_runtime import asked_twice, talkers, uninterrupted


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head (the controller's node) and one more node, one CPU each; the pool's two workers take half a CPU
    each, so both fit on the head once the other node is gone."""
    if ray.is_initialized():
        ray.shutdown()
    nodes = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


async def _nodes(pool: WorkerPool) -> list[str]:
    return [await pool.node(w) for w in range(len(pool.handles))]


def test_a_lost_node_changes_nothing(cluster: Cluster) -> None:
    with FaultServer(delay=0.02) as server:
        expected = outcome(uninterrupted(server))
        since = len(server.arrivals)
        sim = talkers("metropolis")
        endpoint = EndpointConfig(base_url=server.base_url, model="m", api_key_env=None)
        pool = WorkerPool(sim, 2, endpoint, cpus_per_worker=0.5)
        pool.wait_ready()
        head = ray.get_runtime_context().get_node_id()
        on = asyncio.run(_nodes(pool))
        assert sorted(n == head for n in on) == [False, True], "SPREAD put one worker on each node"
        doomed = on.index(next(n for n in on if n != head))
        node = next(n for n in cluster.list_all_nodes() if n.node_id == on[doomed])
        runtime = RayRuntime(sim, pool)
        lose_at = random.Random(4).randint(10, 60)
        losing: list[asyncio.Task[None]] = []

        async def lose() -> None:
            await pool.handles[doomed].quiesce.remote()  # between two LLM calls: no answer dies with the node
            await asyncio.to_thread(cluster.remove_node, node)

        def at(dispatches: int, worker: int) -> None:
            if dispatches >= lose_at and worker == doomed and pool.placement.running[worker] >= 3 and not losing:
                losing.append(asyncio.ensure_future(lose()))

        runtime.on_dispatch = at
        report = asyncio.run(runtime.run())
    assert losing and losing[0].done() and losing[0].exception() is None
    assert outcome(sim) == expected
    assert pool.replaced >= 1 and runtime.redispatched >= 1
    assert asyncio.run(_nodes(pool)) == [head, head], "the replacement runs on the node that is left"
    assert asked_twice(server, since) == 0
    assert report.llm_calls == len(server.arrivals[since:])
