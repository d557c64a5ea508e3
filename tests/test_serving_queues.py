"""The waiting-queue strategies: the order they offer requests in, and the cache-aware queue's skipping."""

from __future__ import annotations

import pytest

from metropolis.kernel import Environment
from metropolis.llm.serving import CostModel, Job, JobStatus, OpenGate, Replica, ServingConfig, make_queue
from metropolis.llm.serving.queues import CacheAwareQueue


class Gate(OpenGate):
    """A gate that knows which agents are resident and which it refuses."""

    def __init__(self, resident: set[int], refused: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.on_gpu, self.refused = resident, refused

    def resident(self, job: Job) -> bool:
        return job.agent_id in self.on_gpu

    def can_admit(self, job: Job) -> bool:
        return job.agent_id not in self.refused


def jobs(*steps: int) -> list[Job]:
    return [Job(f"a{i}", 10, 2, step, agent_id=i) for i, step in enumerate(steps)]


def offered(name: str, queued: list[Job], gate: OpenGate | None = None, window: int = 128) -> list[str]:
    """Take every candidate in the order the queue offers them."""
    queue = make_queue(name, window)
    for job in queued:
        queue.push(job)
    out = []
    for job in queue.candidates(gate or OpenGate()):
        out.append(job.agent)
        queue.take(job)
    queue.settle()
    assert len(queue) == len(queued) - len(out) and queue.tokens == 12 * len(queue)
    return out


def test_priority_offers_lowest_step_first_then_arrival() -> None:
    assert offered("priority", jobs(7, 3, 9, 3)) == ["a1", "a3", "a0", "a2"]


def test_fcfs_offers_arrival_order_whatever_the_step() -> None:
    assert offered("fcfs", jobs(7, 3, 9, 3)) == ["a0", "a1", "a2", "a3"]


def test_cache_aware_offers_resident_agents_first_within_the_window() -> None:
    queued = jobs(1, 2, 3, 4)
    assert offered("cache-aware", queued, Gate(resident={2, 3})) == ["a2", "a3", "a0", "a1"]
    assert offered("cache-aware", jobs(1, 2, 3, 4), Gate(resident={3}), window=2) == ["a0", "a1"]


def test_cache_aware_removes_what_was_taken_when_the_round_settles() -> None:
    queue = CacheAwareQueue(window=8)
    a, b, c = jobs(1, 2, 3)
    for job in (a, b, c):
        queue.push(job)
    queue.take(b)
    assert queue.tokens == 24 and len(queue) == 3  # taken, still in the heap until the round is over
    queue.settle()
    assert len(queue) == 2 and queue.head() is a


def test_requeue_keeps_the_old_place() -> None:
    queue = make_queue("priority")
    a, b = jobs(5, 5)
    queue.push(a)
    queue.push(b)
    queue.take(a)
    queue.requeue(a)
    assert queue.head() is a


def test_unknown_queue_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown waiting queue 'lifo'; choose one of: priority, fcfs, cache-aware"):
        make_queue("lifo")
    with pytest.raises(ValueError, match="window must be >= 1"):
        make_queue("cache-aware", 0)


class Refusing(Gate):
    """Refuses agent 1 until agent 2's request finishes (its memory is taken until then)."""

    def __init__(self) -> None:
        super().__init__(resident=set(), refused={1})

    def admit(self, job: Job, now: float) -> float | None:
        return now

    def release(self, job: Job, now: float) -> None:
        if job.agent_id == 2:
            self.refused = set()


def test_cache_aware_replica_lets_a_refused_request_be_overtaken() -> None:
    """One slot. Agent 1 queues first but its memory is refused until agent 2 is done: the cache-aware queue
    runs agent 2 past it; the strict priority queue waits for it and never gets anywhere."""
    cfg = ServingConfig("t", CostModel(0.01, 0.0001, 0.0005, 0.0), 10_000, 4096, max_running=1)
    env = Environment()
    first, refused, other = jobs(0, 1, 2)
    replica = Replica(env, cfg, gate=Refusing(), queue="cache-aware")
    for job in (first, refused, other):
        replica.submit(job)
    env.run()
    assert all(j.status is JobStatus.DONE for j in (first, refused, other))
    assert (first.finished or 0) < (other.finished or 0) < (refused.finished or 0)
    strict = Replica(Environment(), cfg, gate=Refusing(), queue="priority")
    for job in jobs(0, 1, 2):
        strict.submit(job)
    with pytest.raises(RuntimeError, match="none can be admitted"):
        strict.env.run()
