"""`lockstep` (parallel-sync): every cluster of step s at once, then a global barrier."""

from __future__ import annotations

from collections import deque

from metropolis.scheduling.base import BarrierScheduler
from metropolis.scheduling.unit import WorkUnit


class LockstepScheduler(BarrierScheduler):
    name = "lockstep"

    def _start(self) -> None:
        super()._start()
        self._ready: deque[list[int]] = deque()
        self._outstanding = 0
        self._step = 0
        self._plan_step()

    def _plan_step(self) -> None:
        if self._step >= self.until:
            return
        clusters = self.clusters_at(self._step)
        self._ready.extend(clusters)
        self._outstanding = len(clusters)

    def pop_ready(self) -> WorkUnit | None:
        if not self._ready:
            return None
        cluster = tuple(self._ready.popleft())
        return WorkUnit(self._step, cluster, cluster)

    def complete(self, unit: WorkUnit) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._step += 1
            self._plan_step()
