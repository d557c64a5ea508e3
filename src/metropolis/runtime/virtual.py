"""The virtual-time runtime: the engine driven by the discrete-event kernel; LLM calls take modelled time."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from metropolis.engine.members import KernelTasks
from metropolis.engine.simulation import Simulation, StepResult
from metropolis.kernel import Environment, Event
from metropolis.llm.types import LLMBackend
from metropolis.runtime.collector import fewer_collections
from metropolis.runtime.driver import Driver, Progress
from metropolis.runtime.report import RunReport
from metropolis.scheduling import WorkUnit


class VirtualRuntime(Driver):
    """Every unit is a kernel process; the serving model behind `llm` decides how long their calls take."""

    runtime_name = "virtual"

    def __init__(
        self, sim: Simulation, env: Environment, llm: LLMBackend | None = None, max_units: int | None = None
    ) -> None:
        super().__init__(sim, llm, lambda: env.now, max_units)
        self.env = env
        self.tasks = KernelTasks(env)

    def run(self, progress: Progress | None = None) -> RunReport:
        self._progress = progress
        with fewer_collections():
            self._launch()
            self.env.run()
        return self._result()

    def _spawn(self, unit: WorkUnit, coro: Coroutine[Any, Any, list[StepResult]]) -> None:
        def finished(ev: Event) -> None:
            if ev.ok:
                self._finished(unit, None, ev.value)
            else:
                self._finished(unit, ev.value, None)

        self.env.process(coro).callbacks.append(finished)

    def _soon(self, fn: Callable[[], None]) -> None:
        self.env.schedule(0.0, fn)

    def _end(self) -> None:
        if self.error is not None:
            self.env.stop()  # a finished run has nothing left to drop
