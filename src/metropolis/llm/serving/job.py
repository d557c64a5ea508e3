"""The one record that flows through the cluster, a replica's queue and batch: a request, its status, its timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class JobStatus(IntEnum):
    """Where a request stands in a replica, in the order it passes the stages (so stages compare with `<`)."""

    NEW = 0  # not submitted yet
    WAITING = 1  # in the waiting queue (or, its state loaded, waiting to be admitted ahead of it)
    LOADING = 2  # taken off the queue by the memory gate: its state is on its way to the GPU
    PREFILLING = 3  # admitted: its prompt is prefilled in the iteration in progress
    RUNNING = 4  # first token out: decoding, one token per iteration
    DONE = 5  # last token out


@dataclass(slots=True, eq=False)
class Job:
    """A request as the serving model sees it: sizes, priority, status and the times it reached each stage.

    The timestamps are data, not state: `status` says which of them are set. `on_done` is called once, at the
    virtual instant the last token is out.
    """

    agent: str
    prompt_tokens: int
    output_tokens: int
    priority: int = 0
    on_done: Callable[[Job], object] | None = None
    agent_id: int | None = None  # whose private serving state the request needs (agent memory)
    prefill_tokens: int = 0  # what its prefill computes: the whole prompt unless agent memory says less
    memory_ready: bool = False  # the memory gate pinned its state (on the GPU, or on its way): admission may proceed
    state_at: float = float("-inf")  # when its state is on the GPU (a blocking load stalls the replica until then)
    status: JobStatus = JobStatus.NEW
    replica: int | None = None
    arrival: float | None = None
    admitted: float | None = None
    first_token: float | None = None
    finished: float | None = None
    key: tuple[int, int] = field(default=(0, 0))  # waiting-queue order, set by the queue
    interactive: bool = False  # a person waits for it: it may preempt background requests (see replica.py)
    generated: int = 0  # output tokens out before its last preemption: it resumes from there (recompute)
    preemptions: int = 0  # times it was preempted for an interactive request

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1:
            raise ValueError(f"request of {self.agent}: prompt_tokens must be >= 1, got {self.prompt_tokens}")
        if self.output_tokens < 1:
            raise ValueError(f"request of {self.agent}: output_tokens must be >= 1, got {self.output_tokens}")
        if self.prefill_tokens == 0:
            self.prefill_tokens = self.prompt_tokens

    @property
    def kv_tokens(self) -> int:
        """The KV cache the request holds when its last token is out: what admission reserves."""
        return self.prompt_tokens + self.output_tokens

    @property
    def context(self) -> int:
        """The tokens its (next) prefill puts in the KV cache: the prompt, plus what it generated before a
        preemption (vLLM's recompute preemption prefills them again)."""
        return self.prompt_tokens + self.generated

    @property
    def left(self) -> int:
        """Output tokens still to produce from its (next) prefill on, the one the prefill emits included."""
        return self.output_tokens - self.generated

    @property
    def queue_wait(self) -> float:
        return self._since_arrival(JobStatus.PREFILLING, self.admitted)

    @property
    def ttft(self) -> float:
        return self._since_arrival(JobStatus.RUNNING, self.first_token)

    @property
    def latency(self) -> float:
        return self._since_arrival(JobStatus.DONE, self.finished)

    def _since_arrival(self, stage: JobStatus, at: float | None) -> float:
        if self.status < stage or self.arrival is None or at is None:
            raise RuntimeError(f"the request of {self.agent} is {self.status.name}: it has not reached {stage.name}")
        return at - self.arrival
