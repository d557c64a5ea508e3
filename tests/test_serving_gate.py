"""The memory gate: the default lets everything through and pins nothing; a replica without a gate is the same
as one with the open gate."""

from __future__ import annotations

from metropolis.kernel import Environment
from metropolis.llm.serving import CostModel, Job, JobStatus, OpenGate, Replica, ServingConfig

CFG = ServingConfig("t", CostModel(0.01, 0.0001, 0.0005, 0.00001), 2_000, 512, max_running=3)


def test_the_open_gate_admits_everything_and_pins_nothing() -> None:
    gate, job = OpenGate(), Job("a", 10, 2, agent_id=0)
    assert gate.resident(job) and gate.can_admit(job)
    assert gate.admit(job, 1.0) is None
    assert job.prefill_tokens == 10 and not gate.overlap_loads


class Recording(OpenGate):
    """The open gate, writing down what the replica asked of it."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def can_admit(self, job: Job) -> bool:
        self.log.append(("can_admit", job.agent))
        return True

    def admit(self, job: Job, now: float) -> float | None:
        self.log.append(("admit", job.agent))
        return now  # pinned, on the GPU already

    def release(self, job: Job, now: float) -> None:
        self.log.append(("release", job.agent))


def test_replica_asks_the_gate_check_then_act_and_releases_what_it_pinned() -> None:
    env = Environment()
    gate = Recording()
    replica = Replica(env, CFG, gate=gate)
    job = Job("a", 10, 2, agent_id=0)
    replica.submit(job)
    env.run()
    assert gate.log == [("can_admit", "a"), ("admit", "a"), ("release", "a")]
    assert job.status is JobStatus.DONE and job.memory_ready


def test_no_gate_is_the_open_gate() -> None:
    def run(gate: OpenGate | None) -> list[tuple[float | None, float | None]]:
        env = Environment()
        replica = Replica(env, CFG, gate=gate)
        jobs = [Job(f"a{i}", 100 + 37 * i, 1 + i % 4, i % 3) for i in range(12)]
        for job in jobs:
            replica.submit(job)
        env.run()
        return [(j.admitted, j.finished) for j in jobs]

    assert run(None) == run(OpenGate())
