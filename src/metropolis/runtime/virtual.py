"""The virtual-time runtime: the engine driven by the discrete-event kernel; LLM calls take modelled time."""

from __future__ import annotations

import functools
from collections.abc import Callable

from metropolis.engine.simulation import Simulation
from metropolis.llm.types import LLMBackend
from metropolis.runtime.driver import Driver
from metropolis.kernel import Environment, Event
from metropolis.runtime.report import RunReport
from metropolis.scheduling import WorkUnit


class VirtualRuntime(Driver):
    """Runs every ready unit at once; the serving model behind `llm` decides how long their calls take."""

    runtime_name = "virtual"

    def __init__(self, sim: Simulation, env: Environment, llm: LLMBackend | None = None) -> None:
        super().__init__(sim, llm, lambda: env.now)
        self.env = env
        self._error: BaseException | None = None

    def run(self, progress: Callable[[int], None] | None = None) -> RunReport:
        self._progress = progress
        self._launch()
        self.env.run()
        if self._error is not None:
            raise self._error
        if not self.sim.done():
            raise self.deadlock()
        return self.report()

    def _launch(self) -> None:
        sim = self.sim
        while (unit := sim.pop_ready()) is not None:
            self.started(unit)
            proc = self.env.process(sim.execute(unit, self.llm, self.clock))
            proc.callbacks.append(functools.partial(self._finish, unit))

    def _finish(self, unit: WorkUnit, ev: Event) -> None:
        self.finished(unit)
        if not ev.ok:
            self._error = self.failure(unit, ev.value)
            self._error.__cause__ = ev.value
            self.env.stop()
            return
        self.sim.commit(unit, ev.value)
        if self._progress is not None:
            self._progress(len(unit.members))
        self._launch()
