"""The real-time runtime: the engine driven by asyncio; LLM calls go to real endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from metropolis.engine.simulation import Simulation
from metropolis.llm.types import LLMBackend
from metropolis.runtime.driver import Driver
from metropolis.runtime.report import RunReport
from metropolis.scheduling import WorkUnit


class AsyncioRuntime(Driver):
    """Runs ready units as asyncio tasks, at most `max_units` at once (None: no bound)."""

    runtime_name = "asyncio"

    def __init__(self, sim: Simulation, llm: LLMBackend | None = None, max_units: int | None = None) -> None:
        if max_units is not None and max_units < 1:
            raise ValueError(f"max_units must be >= 1, got {max_units}")
        super().__init__(sim, llm, time.monotonic)
        self.max_units = max_units

    async def run(self, progress: Callable[[int], None] | None = None) -> RunReport:
        sim = self.sim
        tasks: dict[asyncio.Task[list], WorkUnit] = {}
        try:
            while not sim.done():
                while self.max_units is None or len(tasks) < self.max_units:
                    unit = sim.pop_ready()
                    if unit is None:
                        break
                    self.started(unit)
                    tasks[asyncio.ensure_future(sim.execute(unit, self.llm, self.clock))] = unit
                if not tasks:
                    raise self.deadlock()
                finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(finished, key=lambda t: tasks[t].members):
                    unit = tasks.pop(task)
                    self.finished(unit)
                    error = task.exception()
                    if error is not None:
                        raise self.failure(unit, error) from error
                    sim.commit(unit, task.result())
                    if progress is not None:
                        progress(len(unit.members))
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        return self.report()
