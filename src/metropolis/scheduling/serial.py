"""`serial`: the original Generative Agents loop and the correctness reference."""

from __future__ import annotations

from collections import deque

from metropolis.scheduling.base import BarrierScheduler
from metropolis.scheduling.unit import WorkUnit


class SerialScheduler(BarrierScheduler):
    """One agent at a time in id order, step by step; each unit still carries its agent's cluster."""

    name = "serial"

    def _start(self) -> None:
        super()._start()
        self._queue: deque[tuple[int, tuple[int, ...]]] = deque()
        self._running = False
        self._plan_step(0)

    def _plan_step(self, step: int) -> None:
        if step >= self.until or not self.n:
            return
        group_of: dict[int, tuple[int, ...]] = {}
        for cluster in self.clusters_at(step):
            for agent in cluster:
                group_of[agent] = tuple(cluster)
        self._queue.extend((agent, group_of[agent]) for agent in range(self.n))

    def pop_ready(self) -> WorkUnit | None:
        if self._running or not self._queue:
            return None
        agent, group = self._queue.popleft()
        self._running = True
        return WorkUnit(self.table.step[agent], (agent,), group)

    def complete(self, unit: WorkUnit) -> None:
        self._running = False
        if not self._queue:
            self._plan_step(unit.step + 1)
