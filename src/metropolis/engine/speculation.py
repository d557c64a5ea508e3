"""The engine's side of the `speculative` policy: run a unit ahead of its blockers without anybody seeing it.

A speculative unit runs like any other, with three differences, so that nothing outside it sees work that may be
undone: its members' private state is saved before the step (`Agent.state_dict`); the plans it publishes are kept
until it commits; and its results are held, not committed, until the policy says the unit is settled (every
blocker released it). Trace rows and call records go out only at the commit, so an undone run leaves none.

A conflict (a blocker reached the unit's step within R + V) undoes the unit: held results are dropped; a run still
in flight has its LLM calls cancelled (in real time the stream is closed, so vLLM and SGLang abort the request;
in virtual time the unit stops waiting and the call's tokens count as wasted when the serving model finishes
it), and the step unwinds with `Rollback` at its next await, before any more agent code runs. Then the members'
private state is restored and the dispatcher releases them to run again. A speculative unit runs its members one
after another in one coroutine, so an undone unit has no member still running on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from metropolis.engine.agent import Agent, StepContext
from metropolis.engine.members import AsyncioTasks, KernelTasks, Tasks
from metropolis.engine.records import Plan
from metropolis.kernel import Environment, Event
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.scheduling.speculative import SpeculativeScheduler
from metropolis.scheduling.speculative_dispatch import SpeculativeDispatcher
from metropolis.scheduling.table import AgentTable
from metropolis.scheduling.unit import WorkUnit

StepResult = tuple[StepContext, float, float]  # as the simulation's: a member's context and its time span


class SpeculationHost(Protocol):
    """What speculation needs of the simulation that owns it."""

    agents: list[Agent]
    table: AgentTable

    def publish_plan(self, agent: int, plan: Plan) -> None: ...

    def commit_now(self, unit: WorkUnit, results: list[StepResult]) -> None: ...

    async def run_in_order(
        self, unit: WorkUnit, llm: LLMBackend | None, clock: Callable[[], float]
    ) -> list[StepResult]: ...


class Rollback(BaseException):
    """The speculative step was undone by a conflict: unwind without running more agent code."""


@dataclass(slots=True)
class SpeculationStats:
    """What speculation did and cost: units run ahead, units undone, and the tokens of their answers."""

    speculated: int = 0
    rollbacks: int = 0
    cancelled_calls: int = 0
    wasted_calls: int = 0
    wasted_tokens: int = 0
    kept_tokens: int = 0


@dataclass(slots=True)
class SpecRun:
    """One speculative unit from dispatch to commit or undo."""

    unit: WorkUnit
    saved: dict[int, dict[str, Any]] | None = None  # members' private state before the step (once it started)
    results: list[StepResult] | None = None  # finished, waiting to be settled
    plans: list[tuple[int, Plan]] = field(default_factory=list)
    calls: set[PendingCall] = field(default_factory=set)
    answered: list[int] = field(default_factory=list)  # tokens of each call answered to the step
    error: Exception | None = None  # the step failed: raised if the unit settles, forgotten if it is undone
    doomed: bool = False


class PendingCall:
    """An LLM call of a speculative step that can be abandoned: `cancel` makes its awaiter raise `Rollback`."""

    def __init__(self, coro: Coroutine[Any, Any, LLMResponse], tasks: Tasks | None, waste: Callable[[int], None]):
        self._waste = waste
        self._env: Environment | None = tasks.env if isinstance(tasks, KernelTasks) else None
        self._task: asyncio.Future[LLMResponse] | None = None
        self._coro: Coroutine[Any, Any, LLMResponse] | None = None
        if self._env is not None:
            self._gate = self._env.event()
            self._env.process(coro).callbacks.append(self._answered)
        elif isinstance(tasks, AsyncioTasks):
            self._task = asyncio.ensure_future(coro)
        else:
            self._coro = coro  # no runtime to race it on: it can only be abandoned when it returns

    def _answered(self, ev: Event) -> None:
        if not self._gate.triggered:
            if ev.ok:
                self._gate.succeed(ev.value)
            else:
                self._gate.fail(ev.value)
        elif ev.ok:  # abandoned: the serving model finished it anyway
            response: LLMResponse = ev.value
            self._waste(response.prompt_tokens + response.completion_tokens)

    def cancel(self) -> None:
        if self._env is not None and not self._gate.triggered:
            self._gate.fail(Rollback())
        elif self._task is not None:
            self._task.cancel()  # closes the stream: the server aborts the request

    def __await__(self) -> Generator[Any, Any, LLMResponse]:
        if self._env is not None:
            return self._gate.__await__()
        if self._task is not None:
            return self._task.__await__()
        assert self._coro is not None
        return self._coro.__await__()


class CancellableLLM:
    """The LLM backend a speculative unit sees: every call can be abandoned by a conflict."""

    def __init__(self, inner: LLMBackend, run: SpecRun, tasks: Tasks | None, waste: Callable[[int], None]) -> None:
        self.inner, self.run, self.tasks, self._waste = inner, run, tasks, waste

    async def complete(self, request: LLMRequest) -> LLMResponse:
        run = self.run
        if run.doomed:
            raise Rollback
        call = PendingCall(self.inner.complete(request), self.tasks, self._waste)
        run.calls.add(call)
        try:
            response = await call
        except asyncio.CancelledError:
            if run.doomed:
                raise Rollback from None
            raise
        finally:
            run.calls.discard(call)
        if run.doomed:
            self._waste(response.prompt_tokens + response.completion_tokens)
            raise Rollback
        run.answered.append(response.prompt_tokens + response.completion_tokens)
        return response


class Speculation:
    """Buffers, validates and undoes the speculative units of one simulation (module docstring)."""

    def __init__(self, sim: SpeculationHost, policy: SpeculativeScheduler) -> None:
        self.sim = sim
        self.policy = policy
        self.dispatcher = SpeculativeDispatcher(sim.table, policy, self.on_conflict)
        self.stats = SpeculationStats()
        self._runs: dict[WorkUnit, SpecRun] = {}
        self._running: dict[int, SpecRun] = {}  # member -> its speculative run, while the step executes

    # -- what the simulation asks -----------------------------------------------------------------------------

    def covers(self, unit: WorkUnit) -> bool:
        return self.policy.is_speculative(unit) or unit in self._runs

    def running(self, agent: int) -> bool:
        """Whether `agent` is executing a speculative step (its blockers are guessed away, not waited for)."""
        return agent in self._running

    def keep_plan(self, agent: int, plan: Plan) -> bool:
        """Hold a plan published inside a speculative step until it commits; False: publish it now."""
        run = self._running.get(agent)
        if run is None:
            return False
        run.plans.append((agent, plan))
        return True

    async def execute(
        self, unit: WorkUnit, llm: LLMBackend | None, clock: Callable[[], float], tasks: Tasks | None
    ) -> list[StepResult]:
        run = self._runs.setdefault(unit, SpecRun(unit))
        if run.doomed:
            return []  # undone before it started
        self.stats.speculated += 1
        agents = self.sim.agents
        run.saved = {a: agents[a].state_dict() for a in unit.members}
        for a in unit.members:
            self._running[a] = run
        wrapped = CancellableLLM(llm, run, tasks, self._waste) if llm is not None else None
        try:
            return await self.sim.run_in_order(unit, wrapped, clock)
        except Rollback:
            return []
        except Exception as error:  # it may have failed on what it guessed wrong (a partner it lacks): wait
            run.error = error
            return []
        finally:
            for a in unit.members:
                self._running.pop(a, None)

    def finished(self, unit: WorkUnit, results: list[StepResult]) -> None:
        """A unit's run ended (the simulation's `commit`): commit it, hold it, or finish undoing it."""
        run = self._runs.get(unit)
        if run is None:
            self._commit(unit, results)
        elif run.doomed:
            self._undo(run, results)
        elif self.policy.settled(unit):
            del self._runs[unit]
            self._commit(unit, results, run)
        else:
            run.results = results
        self._settle()

    # -- what the dispatcher tells --------------------------------------------------------------------------

    def on_conflict(self, unit: WorkUnit) -> None:
        self.stats.rollbacks += 1
        run = self._runs.setdefault(unit, SpecRun(unit))
        run.doomed = True
        if run.results is not None:
            self._undo(run, run.results)
        else:
            for call in list(run.calls):
                self.stats.cancelled_calls += 1
                call.cancel()

    # -- inside -----------------------------------------------------------------------------------------------

    def _waste(self, tokens: int) -> None:
        """An abandoned call was answered anyway: its tokens bought nothing."""
        self.stats.wasted_calls += 1
        self.stats.wasted_tokens += tokens
        self.policy.record_tokens(0, tokens)

    def _commit(self, unit: WorkUnit, results: list[StepResult], run: SpecRun | None = None) -> None:
        if run is not None:
            if run.error is not None:  # the guess held, so the failure is real
                names = ", ".join(self.sim.agents[a].name for a in unit.members)
                error = run.error
                raise RuntimeError(f"step {unit.step} of {names} failed: {type(error).__name__}: {error}") from error
            for agent, plan in run.plans:
                self.sim.publish_plan(agent, plan)
        kept = sum(c.prompt_tokens + c.output_tokens for ctx, _, _ in results for c in ctx.calls)
        self.stats.kept_tokens += kept
        self.policy.record_tokens(kept, 0)
        self.sim.commit_now(unit, results)

    def _undo(self, run: SpecRun, results: list[StepResult]) -> None:
        """Drop the run's results, restore its members' private state, and let them run again."""
        del self._runs[run.unit]
        # every answer the step got, whether it finished (held results) or unwound half-way
        wasted = sum(run.answered)
        self.stats.wasted_calls += len(run.answered)
        self.stats.wasted_tokens += wasted
        if run.saved is not None:
            agents = self.sim.agents
            for a, state in run.saved.items():
                agents[a].load_state_dict(state)
        self.policy.record_tokens(0, wasted)
        self.dispatcher.release(run.unit)

    def _settle(self) -> None:
        """Commit every held unit that is now settled, lowest step first; a commit may settle more."""
        while True:
            ready = [r for r in self._runs.values() if r.results is not None and self.policy.settled(r.unit)]
            if not ready:
                return
            run = min(ready, key=lambda r: (r.unit.step, r.unit.members))
            del self._runs[run.unit]
            assert run.results is not None
            self._commit(run.unit, run.results, run)
