"""The real-time runtime: the engine driven by asyncio; LLM calls go to real endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from metropolis.engine.members import AsyncioTasks
from metropolis.engine.simulation import Simulation, StepResult
from metropolis.llm.types import LLMBackend
from metropolis.runtime.driver import Driver, Progress
from metropolis.runtime.report import RunReport
from metropolis.scheduling import WorkUnit


class AsyncioRuntime(Driver):
    """Every unit is an asyncio task; units commit in the order they finish."""

    runtime_name = "asyncio"

    def __init__(self, sim: Simulation, llm: LLMBackend | None = None, max_units: int | None = None) -> None:
        super().__init__(sim, llm, time.monotonic, max_units)
        self._tasks: set[asyncio.Task[list[StepResult]]] = set()
        self._over: asyncio.Future[None] | None = None
        self.tasks = AsyncioTasks()

    async def run(self, progress: Progress | None = None) -> RunReport:
        self._progress = progress
        self._over = asyncio.get_running_loop().create_future()
        try:
            self._launch()
            await self._over
        finally:
            tasks, self._tasks = list(self._tasks), set()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        return self._result()

    def _spawn(self, unit: WorkUnit, coro: Coroutine[Any, Any, list[StepResult]]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def finished(t: asyncio.Task[list[StepResult]]) -> None:
            if t not in self._tasks:
                return  # cancelled while the run was being torn down
            self._tasks.discard(t)
            error = asyncio.CancelledError() if t.cancelled() else t.exception()
            self._finished(unit, error, None if error is not None else t.result())

        task.add_done_callback(finished)

    def _soon(self, fn: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_soon(fn)

    def _end(self) -> None:
        if self._over is not None and not self._over.done():
            self._over.set_result(None)
