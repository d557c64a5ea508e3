"""The controller's Ray workers: their actors, the journal inbox, which version of each agent's private state each
worker holds, and a dead worker's replacement. The Ray API is used here and in `session.py` (and
in `worker.py` for its node's id only)."""

from __future__ import annotations

import os
import signal
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from metropolis.engine.simulation import Simulation
from metropolis.llm.endpoints import EndpointConfig
from metropolis.runtime.ray.placement import Placement, spatial_owners
from metropolis.runtime.ray.worker import JournalInbox, JournalOpener, UnitWorker


class WorkerPool:
    """`workers` actors, each with its own copy of the agents; an agent's owner is set by spatial affinity.
    `journal` opens the run's store on a worker, for a resumed run's journaled answers (None: a fresh run).

    `held[w][a]` is the version of agent a's private state that worker w holds, as far as the controller knows
    (only accepted outcomes count); `version[a]` is the committed one."""

    def __init__(
        self,
        sim: Simulation,
        workers: int,
        endpoint: EndpointConfig | None = None,
        cpus_per_worker: float = 1.0,
        journal: JournalOpener | None = None,
    ) -> None:
        self.sim = sim
        self.journal = journal
        self.endpoint = endpoint
        self.cpus = cpus_per_worker
        positions = [sim.store.latest(a).pos for a in range(len(sim.agents))]
        self.placement = Placement(spatial_owners(positions, workers), workers)
        # The inbox lives on the controller's node: it must outlive any worker's node, or a lost node would take
        # the answers of its units with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.inbox: Any = ray.remote(JournalInbox).options(num_cpus=0, scheduling_strategy=here).remote()
        self._agents = ray.put(sim.agents)
        self._world = ray.put(sim.world)
        self.handles: list[Any] = [self._start() for _ in range(workers)]
        self.held: list[dict[int, int]] = [dict.fromkeys(range(len(sim.agents)), 0) for _ in range(workers)]
        self.version = [0] * len(sim.agents)
        self.replaced = 0

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until every worker has started (actors start in seconds): call it before the run's clock starts."""
        try:
            ray.get([h.pid.remote() for h in self.handles], timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"{len(self.handles)} Ray workers did not start within {timeout:g} s: does the cluster have "
                f"{len(self.handles) * self.cpus:g} CPUs free (ray status)?"
            ) from None

    def _start(self) -> Any:
        sim = self.sim
        actor = ray.remote(UnitWorker).options(
            num_cpus=self.cpus, max_concurrency=100_000, scheduling_strategy="SPREAD", max_restarts=0
        )
        return actor.remote(
            self._world, self._agents, sim.seed, sim.record_text, sim.start_seconds, sim.members == "serial",
            self.endpoint, self.inbox, self.journal,
        )  # fmt: skip

    def replace(self, worker: int, handle: Any) -> None:
        """Worker `worker` died: start a fresh one from the agents as built (it holds version 0 of each), once,
        however many of its units report the death."""
        if self.handles[worker] is not handle:
            return
        self.handles[worker] = self._start()
        self.held[worker] = dict.fromkeys(range(len(self.sim.agents)), 0)
        self.placement.live[worker] = True
        self.replaced += 1

    def forget_all(self, worker: int) -> None:
        """Whatever worker `worker` holds is not trusted any more (it was given up on): ship it every state."""
        self.held[worker] = {}

    async def pid(self, worker: int) -> int:
        return int(await self.handles[worker].pid.remote())

    async def node(self, worker: int) -> str:
        return str(await self.handles[worker].node.remote())

    async def kill(self, worker: int, how: str = "ray", between_calls: bool = False) -> None:
        """Fault injection for tests and demos: `ray` (ray.kill) or a POSIX signal name (SIGKILL) to the worker's
        process. `between_calls`: first let no new LLM call start there and wait until none is being asked, so the
        death loses no answer (a call in flight when a worker dies is asked again: its answer never arrived)."""
        handle = self.handles[worker]
        pid = await self.pid(worker)
        if between_calls:
            await handle.quiesce.remote()
        if how == "ray":
            ray.kill(handle, no_restart=True)
        else:
            os.kill(pid, getattr(signal, how))

    def close(self) -> None:
        for handle in [*self.handles, self.inbox]:
            ray.kill(handle, no_restart=True)
