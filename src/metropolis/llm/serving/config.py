"""One serving deployment: a replica's cost model, its memory and batching limits, how many replicas."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from metropolis.compiled import picklable
from metropolis.llm.serving.cost import CostModel


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """A replica is one engine (one GPU, or one tensor-parallel group of `gpus_per_replica` GPUs).

    `kv_capacity_tokens` and `kv_bytes_per_token` are per replica, all tensor-parallel shards together.
    `max_batched_tokens` is the per-iteration token budget (vLLM `max_num_batched_tokens`, SGLang
    `chunked_prefill_size`); `max_running` caps the requests in the batch (vLLM `max_num_seqs`, SGLang
    `max_running_requests`). `queue` names the waiting queue's strategy (`metropolis.llm.serving.queues`:
    priority, lowest step first; fcfs; cache-aware) and `routing` the router (`metropolis.llm.serving.routing`);
    both names are checked where the queue and the router are made. `interactive_slack`: while interactive
    requests are in a replica, a background request starts its prefill only if each of them still finishes
    within this many times its idle latency (replica.py); None: no yielding. Nothing changes without them.
    """

    name: str
    cost: CostModel
    kv_capacity_tokens: int
    max_batched_tokens: int
    max_running: int = 256
    kv_bytes_per_token: int = 0
    replicas: int = 1
    gpus_per_replica: int = 1
    routing: str = "least_loaded"
    queue: str = "priority"
    note: str = ""
    interactive_slack: float | None = 1.5

    def __post_init__(self) -> None:
        if not isinstance(self.cost, CostModel):
            raise TypeError(f"serving config {self.name!r}: cost must be a CostModel, got {type(self.cost).__name__}")
        for field in (
            "kv_capacity_tokens",
            "max_batched_tokens",
            "max_running",
            "replicas",
            "gpus_per_replica",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"serving config {self.name!r}: {field} must be an integer >= 1, got {value!r}")
        if self.interactive_slack is not None and not self.interactive_slack >= 1.0:
            raise ValueError(
                f"serving config {self.name!r}: interactive_slack must be >= 1 (a multiple of the idle latency) or "
                f"None, got {self.interactive_slack!r}"
            )
        if not isinstance(self.kv_bytes_per_token, int) or self.kv_bytes_per_token < 0:
            raise ValueError(
                f"serving config {self.name!r}: kv_bytes_per_token must be an integer >= 0, "
                f"got {self.kv_bytes_per_token!r}"
            )

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    def replace(self, **changes: object) -> ServingConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


picklable(ServingConfig)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
