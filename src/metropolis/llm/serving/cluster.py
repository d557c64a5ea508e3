"""N data-parallel replicas behind a router, with the time-weighted figures benchmarks report."""

from __future__ import annotations

from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.engine import Replica
from metropolis.llm.serving.job import Job
from metropolis.llm.serving.routing import Router, make_router
from metropolis.runtime.kernel import Environment


class Cluster:
    def __init__(self, env: Environment, config: ServingConfig, router: Router | None = None) -> None:
        self.env = env
        self.config = config
        self.replicas = [Replica(env, config, i) for i in range(config.replicas)]
        self.router = router if router is not None else make_router(config.routing)

    def submit(self, job: Job) -> None:
        i = self.router.choose(job, self.replicas) if len(self.replicas) > 1 else 0
        if not 0 <= i < len(self.replicas):
            raise RuntimeError(f"router {type(self.router).__name__} chose replica {i} of {len(self.replicas)}")
        self.replicas[i].submit(job)

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
