"""One replica: queue order, batching, KV capacity, determinism, and the closed-form jumps against a naive
per-iteration reference."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest

from metropolis.kernel import Environment
from metropolis.llm.serving import CostModel, Job, JobStatus, Replica, ServingConfig

COST = CostModel(c0=0.010, c_prefill=0.0001, c_decode=0.0005, c_kv=0.00001)


def config(**kw: object) -> ServingConfig:
    base: dict[str, object] = {
        "name": "test",
        "cost": COST,
        "kv_capacity_tokens": 100_000,
        "max_batched_tokens": 4096,
    }
    base.update(kw)
    return ServingConfig(**base)  # type: ignore[arg-type]


@dataclass
class Arrival:
    time: float
    prompt: int
    output: int
    priority: int = 0


def run_replica(cfg: ServingConfig, arrivals: list[Arrival]) -> list[Job]:
    """Submit each arrival at its time through the kernel; returns the jobs, in arrival-list order."""
    env = Environment()
    replica = Replica(env, cfg)
    jobs = [Job(f"a{i}", a.prompt, a.output, a.priority) for i, a in enumerate(arrivals)]
    for a, job in zip(arrivals, jobs, strict=True):
        env.schedule(a.time, replica.submit, job)
    env.run()
    return jobs


def naive(cfg: ServingConfig, arrivals: list[Arrival]) -> list[tuple[float, float]]:
    """Reference: the same policy stepped one iteration at a time; (first token, finish) per arrival."""
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i].time, i))
    waiting: list[tuple[int, int, int]] = []
    running: list[list[int]] = []  # [index, generated]
    out: dict[int, tuple[float, float]] = {}
    first: dict[int, float] = {}
    t, nxt, reserved = 0.0, 0, 0
    while nxt < len(order) or waiting or running:
        if not waiting and not running:
            t = max(t, arrivals[order[nxt]].time)
        while nxt < len(order) and arrivals[order[nxt]].time <= t:
            i = order[nxt]
            heapq.heappush(waiting, (arrivals[i].priority if cfg.queue == "priority" else 0, nxt, i))
            nxt += 1
        admitted: list[int] = []
        prefill, budget = 0, cfg.max_batched_tokens - len(running)
        while waiting:
            a = arrivals[waiting[0][2]]
            if len(running) + len(admitted) >= cfg.max_running:
                break
            if reserved + a.prompt + a.output > cfg.kv_capacity_tokens:
                break
            if admitted and a.prompt > budget - prefill:
                break
            i = heapq.heappop(waiting)[2]
            admitted.append(i)
            prefill += a.prompt
            reserved += a.prompt + a.output
        if not admitted and not running:
            continue
        kv = sum(arrivals[i].prompt + g for i, g in running)
        t += cfg.cost.iteration(prefill, len(running), kv)
        still = []
        for entry in running:
            entry[1] += 1
            i = entry[0]
            if entry[1] == arrivals[i].output:
                out[i] = (first[i], t)
                reserved -= arrivals[i].prompt + arrivals[i].output
            else:
                still.append(entry)
        for i in admitted:
            first[i] = t
            if arrivals[i].output == 1:
                out[i] = (t, t)
                reserved -= arrivals[i].prompt + arrivals[i].output
            else:
                still.append([i, 1])
        running = still
    return [out[i] for i in range(len(arrivals))]


def random_stream(rng: random.Random, n: int, rate: float) -> list[Arrival]:
    t, out = 0.0, []
    for _ in range(n):
        if rng.random() > 0.1:  # one arrival in ten comes at the same instant as the one before
            t += rng.expovariate(rate)
        out.append(Arrival(t, rng.randint(1, 900), rng.randint(1, 40), rng.randint(0, 5)))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_jumping_model_matches_the_per_iteration_reference(seed: int) -> None:
    rng = random.Random(seed)
    cfg = config(
        kv_capacity_tokens=rng.choice([2_000, 5_000, 100_000]),
        max_batched_tokens=rng.choice([512, 1500, 8192]),
        max_running=rng.choice([3, 8, 256]),
        queue="priority" if rng.random() < 0.5 else "fcfs",
    )
    arrivals = random_stream(rng, 300, rate=rng.choice([2.0, 20.0, 200.0]))
    jobs = run_replica(cfg, arrivals)
    expected = naive(cfg, arrivals)
    for job, (first, end) in zip(jobs, expected, strict=True):
        assert job.first_token == pytest.approx(first, rel=1e-9, abs=1e-12)
        assert job.finished == pytest.approx(end, rel=1e-9, abs=1e-12)


def test_single_request_takes_a_prefill_then_output_minus_one_decodes() -> None:
    (job,) = run_replica(config(), [Arrival(1.0, 100, 3)])
    prefill = 0.010 + 0.0001 * 100
    decode1 = 0.010 + 0.0005 + 0.00001 * 101
    decode2 = 0.010 + 0.0005 + 0.00001 * 102
    assert job.admitted == 1.0
    assert job.first_token == pytest.approx(1.0 + prefill)
    assert job.finished == pytest.approx(1.0 + prefill + decode1 + decode2)


@pytest.mark.parametrize(("queue", "expected"), [("priority", [0, 2, 3, 1]), ("fcfs", [0, 1, 2, 3])])
def test_waiting_queue_orders_by_step_then_arrival_or_fcfs(queue: str, expected: list[int]) -> None:
    # The first request occupies the only slot; the rest queue (steps 7, 3, 3) and are served one by one.
    arrivals = [
        Arrival(0.0, 10, 5, 9),
        Arrival(0.001, 10, 2, 7),
        Arrival(0.002, 10, 2, 3),
        Arrival(0.003, 10, 2, 3),
    ]
    jobs = run_replica(config(max_running=1, queue=queue), arrivals)
    assert sorted(range(4), key=lambda i: jobs[i].admitted or 0.0) == expected


def test_two_concurrent_requests_finish_sooner_than_serially() -> None:
    one = run_replica(config(), [Arrival(0.0, 600, 20)])[0].latency
    pair = run_replica(config(), [Arrival(0.0, 600, 20), Arrival(0.0, 600, 20)])
    assert max(j.finished or 0.0 for j in pair) < 2 * one
    assert max(j.finished or 0.0 for j in pair) > one  # but batching is not free


def test_kv_capacity_queues_requests_until_memory_frees() -> None:
    # Each request reserves 600 + 20 tokens; 1,000 tokens hold one at a time.
    jobs = run_replica(config(kv_capacity_tokens=1000), [Arrival(0.0, 600, 20), Arrival(0.0, 600, 20)])
    assert jobs[1].admitted == jobs[0].finished
    assert jobs[1].queue_wait > 0
    roomy = run_replica(config(kv_capacity_tokens=1240), [Arrival(0.0, 600, 20), Arrival(0.0, 600, 20)])
    assert roomy[1].admitted == 0.0


def test_request_larger_than_kv_capacity_is_refused() -> None:
    env = Environment()
    replica = Replica(env, config(kv_capacity_tokens=500))
    with pytest.raises(ValueError, match="needs 620 KV tokens"):
        replica.submit(Job("big", 600, 20))


def test_token_budget_splits_prefills_across_iterations() -> None:
    jobs = run_replica(config(max_batched_tokens=1000), [Arrival(0.0, 600, 5), Arrival(0.0, 600, 5)])
    assert jobs[0].first_token is not None and jobs[1].admitted == jobs[0].first_token


def test_same_inputs_give_identical_times() -> None:
    arrivals = random_stream(random.Random(7), 500, rate=50.0)
    a = [(j.admitted, j.first_token, j.finished) for j in run_replica(config(max_running=16), arrivals)]
    b = [(j.admitted, j.first_token, j.finished) for j in run_replica(config(max_running=16), arrivals)]
    assert a == b


def test_decode_runs_are_jumped_not_stepped() -> None:
    env = Environment()
    replica = Replica(env, config())
    replica.submit(Job("a", 100, 1000))
    steps = 0
    while env.peek() != float("inf"):
        env.step()
        steps += 1
    assert replica.iterations == 1000 and steps <= 3


def test_a_job_passes_its_stages_in_order_and_says_which_it_has_not_reached() -> None:
    env = Environment()
    replica = Replica(env, config(max_running=1))
    first, second = Job("a", 100, 3), Job("b", 100, 1)
    seen: list[tuple[str, JobStatus]] = []
    first.on_done = lambda j: seen.append((j.agent, second.status))
    assert first.status is JobStatus.NEW
    replica.submit(first)
    replica.submit(second)
    assert (first.status, second.status) == (JobStatus.PREFILLING, JobStatus.WAITING)
    with pytest.raises(RuntimeError, match="b is WAITING: it has not reached PREFILLING"):
        _ = second.queue_wait
    env.run(until=0.015)  # the prefill iteration (0.020 s) is still running
    assert first.status is JobStatus.PREFILLING
    env.run(until=0.025)
    assert first.status is JobStatus.RUNNING and first.ttft == pytest.approx(0.020)
    env.run()
    assert seen == [("a", JobStatus.WAITING)]  # b is admitted once a's slot is free
    assert first.status is second.status is JobStatus.DONE and second.latency > first.latency
