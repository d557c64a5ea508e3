"""The Ray runtime on a real local Ray (2 CPUs, one per module): random worlds with 2 workers give the serial
histories; a worker killed (ray.kill, SIGKILL) or stopped (SIGSTOP) at a seeded random dispatch leaves the run
identical to an uninterrupted one, with no answered LLM call asked again."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

import psutil  # Ray ships it (on the path once ray is imported)

from metropolis.agents import RandomWalker, WalkerConfig
from metropolis.engine import Simulation, StepContext
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.journal import Journal
from metropolis.runtime import AsyncioRuntime
from metropolis.runtime.ray import RayRuntime, WorkerPool, ray_session
from metropolis.runtime.ray.worker import JournalOpener
from metropolis.store import SqliteStore
from metropolis.world import World
from metropolis.world.spatial import Pos
from tests.fault_server import FaultServer
from tests.scenarios import outcome, run_shuffled, walker_sim, walled_map


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    with ray_session(cpus=2):
        yield


def on_ray(
    sim: Simulation, endpoint: EndpointConfig | None = None, opener: JournalOpener | None = None, **kw: object
) -> RayRuntime:
    pool = WorkerPool(sim, 2, endpoint, cpus_per_worker=0, journal=opener)
    pool.wait_ready()
    return RayRuntime(sim, pool, **kw)  # type: ignore[arg-type]


def random_world(rng: random.Random) -> dict:
    """One world as the property test draws them (tests/test_properties.py), from a seeded generator."""
    config = WalkerConfig(
        move_prob=rng.random(), talk_prob=rng.random(), rest_prob=rng.choice([0.0, 0.2, 0.5]),
        rest_steps=rng.randint(1, 8),
    )  # fmt: skip
    return {
        "n": rng.randint(2, 60), "seed": rng.randint(0, 2**16), "size": rng.randint(6, 40),
        "steps": rng.randint(1, 16), "R": rng.choice([0.0, 1.0, 2.0, 3.0, 4.0, 6.0]),
        "V": rng.choice([1.0, 1.5, 2.0]), "walls": rng.choice([0.0, 0.1, 0.3]), "config": config,
    }  # fmt: skip


@pytest.mark.parametrize("sample", range(4))
def test_random_worlds_on_two_workers_match_serial(sample: int) -> None:
    world = random_world(random.Random(1000 + sample))
    serial = walker_sim(scheduler="serial", **world)
    run_shuffled(serial, random.Random(sample))
    sim = walker_sim(scheduler="metropolis", **world)
    report = asyncio.run(on_ray(sim).run())
    assert outcome(sim) == outcome(serial)
    assert report.agent_steps == world["n"] * world["steps"]


def test_the_speculative_policy_is_refused_before_any_worker_is_asked() -> None:
    """Its bets are held and undone around steps run in this process; a worker's step would commit unchecked."""
    sim = walker_sim(4, "speculative", steps=2)
    with pytest.raises(ValueError, match="the speculative policy runs in this process only"):
        RayRuntime(sim, None)  # type: ignore[arg-type]  # refused before the pool is looked at


def test_the_local_ray_listens_on_loopback_only() -> None:
    """Every process of the Ray this module started (GCS, raylet, workers, agents) binds 127.0.0.1 only."""
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert len({c.pid for c in listening}) >= 3  # at least the GCS, the raylet and a worker
    assert [c for c in listening if not ipaddress.ip_address(c.laddr.ip.removeprefix("::ffff:")).is_loopback] == []


TALKERS = WalkerConfig(call_prob=0.5, talk_prob=0.6)


def talkers(scheduler: str) -> Simulation:
    return walker_sim(24, scheduler, seed=7, steps=10, config=TALKERS)


def uninterrupted(server: FaultServer) -> Simulation:
    sim = talkers("serial")
    endpoint = EndpointConfig(base_url=server.base_url, model="m", api_key_env=None)

    async def go() -> None:
        async with OpenAIClient(endpoint) as client:
            await AsyncioRuntime(sim, client).run()

    asyncio.run(go())
    return sim


def asked_twice(server: FaultServer, since: int) -> int:
    """Calls of the run after `since` arrivals that reached the server more than once (a label starts with the
    client's own count, which a replaced worker's client restarts)."""
    seen = Counter((a.label.split(":", 1)[1], repr(a.body["messages"])) for a in server.arrivals[since:])
    return sum(n - 1 for n in seen.values())


@pytest.mark.parametrize(("how", "seed"), [("ray", 1), ("SIGKILL", 2)])
def test_a_killed_worker_changes_nothing(how: str, seed: int) -> None:
    with FaultServer(delay=0.02) as server:
        expected = outcome(uninterrupted(server))
        since = len(server.arrivals)
        sim = talkers("metropolis")
        endpoint = EndpointConfig(base_url=server.base_url, model="m", api_key_env=None)
        runtime = on_ray(sim, endpoint)
        kill_at = random.Random(seed).randint(10, 60)
        killing: list[asyncio.Task[bool]] = []

        def kill(dispatches: int, worker: int) -> None:
            busy = runtime.pool.placement.running[worker] >= 3  # units of its own in flight
            tried = killing and (not killing[-1].done() or killing[-1].result())
            if dispatches >= kill_at and busy and not tried:  # between two LLM calls (none lost), holding answers
                killing.append(asyncio.ensure_future(runtime.pool.kill(worker, how, between_calls=True, holding=True)))

        runtime.on_dispatch = kill
        report = asyncio.run(runtime.run())
    assert outcome(sim) == expected
    assert runtime.pool.replaced == 1 and runtime.redispatched >= 1
    assert killing[-1].done() and killing[-1].result() is True
    assert asked_twice(server, since) == 0  # the answers its lost units had got came from the journal inbox
    assert runtime.reused > 0
    assert runtime.batches.calls < runtime.dispatches  # units went in batches, and a death failed whole batches
    assert report.llm_calls == len(server.arrivals[since:])


class Faulty(RandomWalker):
    """A walker whose step raises at `step` (the agent's own bug)."""

    def __init__(self, name: str, pos: Pos, step: int) -> None:
        super().__init__(name, pos)
        self.fails_at = step

    async def step(self, ctx: StepContext) -> None:
        if ctx.step == self.fails_at:
            raise ValueError(f"{self.name} trips at step {ctx.step}")
        await super().step(ctx)


@pytest.mark.parametrize("agents", [1, 12])  # a lone unit (one Ray call) and one in a batch of many
def test_an_agents_error_fails_the_run_with_its_message(agents: int) -> None:
    world = World(tilemap=walled_map(4 * agents, 4, 0.0, random.Random(0)), perception_radius=1.0, max_velocity=1.0)
    crowd = [Faulty(f"a{i}", (4 * i, 0), step=2 if i == agents - 1 else -1) for i in range(agents)]
    sim = Simulation(world, crowd, until=4, scheduler="metropolis")
    with pytest.raises(Exception, match=f"a{agents - 1} trips at step 2"):
        asyncio.run(on_ray(sim).run())


def test_a_stopped_worker_is_refused_when_it_comes_back() -> None:
    with FaultServer(delay=0.02) as server:
        expected = outcome(uninterrupted(server))
        sim = talkers("metropolis")
        endpoint = EndpointConfig(base_url=server.base_url, model="m", api_key_env=None)
        runtime = on_ray(sim, endpoint, unit_timeout=1.5)
        pids = [int(p) for p in asyncio.run(_pids(runtime.pool))]
        stop_at = random.Random(3).randint(10, 60)

        def stop(dispatches: int, worker: int) -> None:
            if dispatches == stop_at:
                os.kill(pids[worker], signal.SIGSTOP)
                threading.Timer(4.0, os.kill, (pids[worker], signal.SIGCONT)).start()

        runtime.on_dispatch = stop
        runtime.late_grace = 20.0  # the run may end before the stopped worker resumes: wait for its answer
        asyncio.run(runtime.run())
    assert outcome(sim) == expected
    assert runtime.refused >= 1 and runtime.redispatched >= 1


async def _pids(pool: WorkerPool) -> list[int]:
    return [await pool.pid(w) for w in range(len(pool.handles))]


def test_a_rerun_takes_every_answer_from_the_journal(tmp_path: Path) -> None:
    """What a resumed run does: the run again, with the journal of the first; workers read it themselves."""
    with FaultServer(delay=0.01) as server:
        endpoint = EndpointConfig(base_url=server.base_url, model="m", api_key_env=None)
        store = SqliteStore(tmp_path / "store.sqlite")
        first = talkers("metropolis")
        asyncio.run(on_ray(first, endpoint, journal=Journal(store)).run())
        since = len(server.arrivals)
        again = talkers("metropolis")
        journal = Journal(store)
        report = asyncio.run(on_ray(again, endpoint, functools.partial(SqliteStore, store.path), journal=journal).run())
        store.close()
    assert outcome(again) == outcome(first)
    assert len(server.arrivals) == since  # not one call reached the server
    assert journal.hits == report.llm_calls > 0 and journal.misses == 0
