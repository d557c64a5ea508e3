"""The one record that flows through the cluster, a replica's queue and batch: a request, its timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Job:
    """A request as the serving model sees it: sizes, priority, and the times it reached each stage.

    `on_done` is called once, at the virtual instant the last token is out.
    """

    agent: str
    prompt_tokens: int
    output_tokens: int
    priority: int = 0
    on_done: Callable[[Job], object] | None = None
    agent_id: int | None = None  # whose private serving state the request needs (agent memory)
    prefill_tokens: int = 0  # what its prefill computes: the whole prompt unless agent memory says less
    memory_ready: bool = False  # agent memory: its state is on the GPU and pinned, admission may proceed
    state_at: float = float("-inf")  # agent memory: when its state is on the GPU (a blocking load stalls until)
    replica: int | None = None
    arrival: float | None = None
    admitted: float | None = None
    first_token: float | None = None
    finished: float | None = None
    key: tuple[int, int] = field(default=(0, 0))  # waiting-queue order, set by the replica

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
    def queue_wait(self) -> float:
        return _span(self.arrival, self.admitted)

    @property
    def ttft(self) -> float:
        return _span(self.arrival, self.first_token)

    @property
    def latency(self) -> float:
        return _span(self.arrival, self.finished)


def _span(start: float | None, end: float | None) -> float:
    if start is None or end is None:
        raise RuntimeError("the request has not reached that stage yet")
    return end - start
