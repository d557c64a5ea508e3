"""N data-parallel replicas behind a router, with the time-weighted figures benchmarks report."""

from __future__ import annotations

from metropolis.kernel import Environment
from metropolis.llm.serving.agentmem import AgentMemory, ReplicaMemory, combined_stats, replica_memories
from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.gate import MemoryGate
from metropolis.llm.serving.job import Job
from metropolis.llm.serving.queues import DEFAULT_WINDOW
from metropolis.llm.serving.replica import Replica
from metropolis.llm.serving.routing import AgentAffinity, Router, make_router
from metropolis.memory.manager import MemoryStats


class Cluster:
    """`memory`: agent memory on every replica (see agentmem.py); it routes by agent affinity unless `router`
    says otherwise."""

    def __init__(
        self,
        env: Environment,
        config: ServingConfig,
        router: Router | None = None,
        memory: AgentMemory | None = None,
    ) -> None:
        self.env = env
        self.config = config
        self.memories: list[ReplicaMemory] = []
        if memory is not None:
            c_prefill = config.cost.c_prefill
            self.memories = replica_memories(memory, config.replicas, lambda tokens: c_prefill * tokens)
            if router is None:
                router = AgentAffinity()
        self.router = router if router is not None else make_router(config.routing)
        gates: list[MemoryGate | None] = list(self.memories) or [None] * config.replicas
        queue, window = config.queue, DEFAULT_WINDOW
        if memory is not None:
            window = memory.window
            if memory.admission == "lpm":
                queue = "cache-aware"
        self.replicas = [Replica(env, config, i, gates[i], queue, window) for i in range(config.replicas)]
        self._prefetch_pending = False

    def submit(self, job: Job) -> None:
        i = self.router.choose(job, self.replicas) if len(self.replicas) > 1 else 0
        if not 0 <= i < len(self.replicas):
            raise RuntimeError(f"router {type(self.router).__name__} chose replica {i} of {len(self.replicas)}")
        self.replicas[i].submit(job)

    def prefetch(self) -> None:
        """Let every replica's memory manager prefetch (the runtime calls this on scheduler commits).

        Commits come in bursts at one instant (a batch's requests finish together; agents without calls
        commit at once), and a pass ranks every agent, so one pass is scheduled after the burst instead of one
        per commit: the pass then sees the whole burst, and a thousand agents cost one ranking, not a thousand.
        """
        if self.memories and not self._prefetch_pending:
            self._prefetch_pending = True
            self.env.schedule(0.0, self._prefetch_now)

    def _prefetch_now(self) -> None:
        self._prefetch_pending = False
        for m in self.memories:
            m.prefetch(self.env.now)

    def memory_stats(self) -> MemoryStats | None:
        """Agent-memory statistics summed over the replicas, or None without agent memory."""
        return combined_stats(self.memories) if self.memories else None

    @property
    def completed(self) -> int:
        return sum(r.completed for r in self.replicas)

    def utilisation(self, until: float | None = None) -> float:
        """Busy replica-seconds over replica-seconds since the first request arrived (0 before any)."""
        starts = [r.first_arrival for r in self.replicas if r.first_arrival is not None]
        if not starts:
            return 0.0
        span = (self.env.now if until is None else until) - min(starts)
        busy = sum(r.busy_time for r in self.replicas)
        return busy / (span * len(self.replicas)) if span > 0 else 0.0

    def mean_batch_size(self) -> float:
        """Requests per iteration, weighted by iteration time, over the time replicas were busy."""
        busy = sum(r.busy_time for r in self.replicas)
        return sum(r.batch_area for r in self.replicas) / busy if busy > 0 else 0.0
