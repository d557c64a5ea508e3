"""What the virtual-time and the asyncio runtimes share: launching ready units and committing finished ones.

As with SimPy's `rt.py`, the two differ only in how time advances and how they wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from metropolis.engine.simulation import Simulation
from metropolis.llm.accounting import Accounting
from metropolis.llm.types import LLMBackend
from metropolis.runtime.meter import MeteredBackend, Occupancy
from metropolis.runtime.report import RunReport
from metropolis.scheduling import WorkUnit


class StepFailed(RuntimeError):
    """An agent's step raised; the message names the agents and the step."""


class Driver:
    """Books for one run: the metered LLM backend, running-agent occupancy, the accounting, and the report.

    `accounting` listens to the simulation's call records: the run's one count of calls and tokens, per agent,
    in every runtime (set its `prices` for a cost).
    """

    runtime_name = "driver"

    def __init__(self, sim: Simulation, llm: LLMBackend | None, clock: Callable[[], float]) -> None:
        self.sim = sim
        self.clock = clock
        self.llm = MeteredBackend(llm, clock) if llm is not None else None
        self.running = Occupancy(clock)
        self.accounting = Accounting()
        sim.listeners.append(self.accounting)
        self._wall0 = time.perf_counter()
        self._t0 = clock()

    def started(self, unit: WorkUnit) -> None:
        self.running.change(len(unit.members))

    def finished(self, unit: WorkUnit) -> None:
        self.running.change(-len(unit.members))

    def failure(self, unit: WorkUnit, error: BaseException) -> StepFailed:
        names = ", ".join(self.sim.agents[a].name for a in unit.members)
        return StepFailed(f"step {unit.step} of {names} failed: {type(error).__name__}: {error}")

    def deadlock(self) -> RuntimeError:
        return RuntimeError(
            f"no unit is ready or running but the run is not finished (GVT {self.sim.scheduler.gvt()}); "
            "this is a scheduler bug"
        )

    def report(self) -> RunReport:
        sim, llm = self.sim, self.llm
        end = self.clock()
        tokens = self.accounting.total()
        return RunReport(
            scheduler=sim.scheduler.name,
            runtime=self.runtime_name,
            agents=len(sim.agents),
            steps=sim.steps,
            agent_steps=sim.agent_steps,
            units=sim.scheduler.dispatched_units,
            llm_calls=tokens.calls,
            prompt_tokens=tokens.prompt_tokens,
            completion_tokens=tokens.completion_tokens,
            duration=end - self._t0,
            mean_running_agents=self.running.mean(end),
            mean_llm_in_flight=llm.in_flight.mean(end) if llm else 0.0,
            peak_llm_in_flight=llm.in_flight.peak if llm else 0,
            wall_seconds=time.perf_counter() - self._wall0,
        )
