"""A replica's memory gate: may a waiting request start, and when is the private state it needs on the GPU.

Check-then-act, as nano-vllm's block manager: `can_admit` asks, `admit` pins the state and says when it is on
the GPU, `release` unpins it when the request finishes. The default gate manages nothing and lets every request
through; agent memory (`agentmem.ReplicaMemory`) is the other gate. The replica asks the gate, never a mode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from mypy_extensions import mypyc_attr

from metropolis.llm.serving.job import Job


@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryGate(ABC):
    """What a replica asks of the memory behind it.

    `overlap_loads`: a request whose state is still on its way waits off the queue while the replica computes
    the others (True), or the replica stalls until the state is there (False: a blocking load).

    A base class rather than a Protocol: the replica asks it at every iteration, and compiled code calls a class's
    methods natively, a protocol's through Python (metropolis/compiled.py).
    """

    overlap_loads: bool

    @abstractmethod
    def resident(self, job: Job) -> bool:
        """Is everything the job needs on the GPU already (a hit, if admitted now)?"""
        ...

    @abstractmethod
    def can_admit(self, job: Job) -> bool: ...

    @abstractmethod
    def admit(self, job: Job, now: float) -> float | None:
        """Pin the job's state (and set its prefill tokens); when it is on the GPU, or None: nothing pinned."""
        ...

    @abstractmethod
    def release(self, job: Job, now: float) -> None: ...

    @abstractmethod
    def prefetch(self, now: float) -> None:
        """Move the state needed soonest towards the GPU (called after each segment of the replica)."""
        ...


@mypyc_attr(allow_interpreted_subclasses=True)
class OpenGate(MemoryGate):
    """No memory to manage: every request may start at once, its whole prompt prefilled, nothing pinned."""

    overlap_loads = False

    def resident(self, job: Job) -> bool:
        return True

    def can_admit(self, job: Job) -> bool:
        return True

    def admit(self, job: Job, now: float) -> float | None:
        return None

    def release(self, job: Job, now: float) -> None:
        pass

    def prefetch(self, now: float) -> None:
        pass
