"""The dispatch/commit loop, written once: launch every unit the policy lets run, and when one finishes, commit it
and launch again. The virtual-time and the asyncio runtimes supply only how a unit's coroutine is started
(`_spawn`) and how the run ends (`_end`): as with SimPy's `rt.py`, they differ only in how time passes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from metropolis.engine.members import Tasks
from metropolis.engine.simulation import Simulation, StepResult
from metropolis.llm.accounting import Accounting
from metropolis.llm.types import LLMBackend
from metropolis.runtime.meter import MeteredBackend, Occupancy
from metropolis.runtime.report import RunReport
from metropolis.scheduling import WorkUnit

Progress = Callable[[int], None]


@mypyc_attr(native_class=False)  # mypyc compiles no subclass of a builtin exception but Exception
class StepFailed(RuntimeError):
    """An agent's step raised; the message names the agents and the step."""


@mypyc_attr(allow_interpreted_subclasses=True)
class Driver(ABC):
    """One run's loop and books: the metered LLM backend, running-agent occupancy, the accounting, and the report.

    `max_units` bounds the units running at once (None: whatever the policy allows). `accounting` listens to the
    simulation's call records: the run's one count of calls and tokens, per agent, in every runtime (set its
    `prices` for a cost).
    """

    runtime_name: ClassVar[str] = "driver"  # a ClassVar: compiled, an interpreted subclass's own is read

    def __init__(
        self, sim: Simulation, llm: LLMBackend | None, clock: Callable[[], float], max_units: int | None = None
    ) -> None:
        if max_units is not None and max_units < 1:
            raise ValueError(f"max_units must be >= 1, got {max_units}")
        self.sim = sim
        self.clock = clock
        self.max_units = max_units
        self.llm = MeteredBackend(llm, clock) if llm is not None else None
        self.running = Occupancy(clock)
        self.error: BaseException | None = None
        self.tasks: Tasks | None = None  # what the runtime lends a unit's members to run together
        self._units = 0  # units running now
        self._progress: Progress | None = None
        self.accounting = Accounting()
        sim.call_listeners.append(self.accounting)
        self._wall0 = time.perf_counter()
        self._t0 = clock()
        self._woken = False  # a settle is asked for (`_wake`)
        if sim.speculation is not None:
            sim.speculation.wake = self._wake

    # -- what a runtime supplies ------------------------------------------------------------------------------

    @abstractmethod
    def _spawn(self, unit: WorkUnit, coro: Coroutine[Any, Any, list[StepResult]]) -> None:
        """Start running `coro`; when it ends, call `_finished(unit, error, results)`."""

    @abstractmethod
    def _end(self) -> None:
        """The run is over (finished, or `error` is set): stop waiting, and stop whatever still runs."""

    @abstractmethod
    def _soon(self, fn: Callable[[], None]) -> None:
        """Call `fn` as soon as the agent code running now yields (at the same time, virtually)."""

    def _execute(self, unit: WorkUnit) -> Coroutine[Any, Any, list[StepResult]]:
        """The coroutine that runs a unit: here, in this process (the Ray runtime sends it to a worker)."""
        return self.sim.execute(unit, self.llm, self.clock, self.tasks)

    # -- the loop ---------------------------------------------------------------------------------------------

    def _launch(self) -> None:
        sim = self.sim
        while self.max_units is None or self._units < self.max_units:
            unit = sim.pop_ready()
            if unit is None:
                break
            self._units += 1
            self.running.change(len(unit.members))
            self._spawn(unit, self._execute(unit))
        if self._units == 0 and self.error is None:
            if not sim.done():
                self.error = self.deadlock()
            self._end()

    def _finished(self, unit: WorkUnit, error: BaseException | None, results: list[StepResult] | None) -> None:
        self._units -= 1
        self.running.change(-len(unit.members))
        if self.error is not None:
            return  # stopping already: nothing more is committed
        if error is not None:
            names = ", ".join(self.sim.agents[a].name for a in unit.members)
            failed = StepFailed(f"step {unit.step} of {names} failed: {type(error).__name__}: {error}")
            failed.__cause__ = error
            self._stop(failed)
            return
        assert results is not None
        try:
            self.sim.commit(unit, results)
        except BaseException as commit_error:  # a causality alarm, a bad move: the run stops, the error surfaces
            self._stop(commit_error)
            return
        if self._progress is not None:
            self._progress(len(unit.members))
        self._launch()

    def _wake(self) -> None:
        """Speculation's held runs may have settled inside a step (`Speculation.wake`): commit them soon."""
        if not self._woken:
            self._woken = True
            self._soon(self._settle)

    def _settle(self) -> None:
        self._woken = False
        speculation = self.sim.speculation
        if self.error is not None or speculation is None:
            return
        try:
            speculation.settle()
        except BaseException as commit_error:  # as in `_finished`: the run stops, the error surfaces
            self._stop(commit_error)
            return
        self._launch()

    def _stop(self, error: BaseException) -> None:
        """The run stops on `error`: nothing more is committed, and `_result` raises it."""
        self.error = error
        self._end()

    def deadlock(self) -> RuntimeError:
        return RuntimeError(
            f"no unit is ready or running but the run is not finished (GVT {self.sim.table.gvt()}); "
            "this is a scheduler bug"
        )

    def _result(self) -> RunReport:
        if self.error is not None:
            raise self.error
        if not self.sim.done():
            raise self.deadlock()
        return self.report()

    def report(self) -> RunReport:
        sim, llm = self.sim, self.llm
        end = self.clock()
        tokens = self.accounting.total()
        return RunReport(
            scheduler=sim.scheduler.name,
            runtime=self.runtime_name,
            agents=len(sim.agents),
            steps=sim.until,
            agent_steps=sim.agent_steps,
            units=sim.units_dispatched,
            llm_calls=tokens.calls,
            prompt_tokens=tokens.prompt_tokens,
            completion_tokens=tokens.completion_tokens,
            duration=end - self._t0,
            mean_running_agents=self.running.mean(end),
            mean_llm_in_flight=llm.in_flight.mean(end) if llm else 0.0,
            peak_llm_in_flight=llm.in_flight.peak if llm else 0,
            wall_seconds=time.perf_counter() - self._wall0,
        )
