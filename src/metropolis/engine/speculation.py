"""The engine's side of the `speculative` policy: run units ahead of their blockers without anybody seeing it.

A speculative unit runs like any other, with three differences, so that nothing outside it sees work that may be
undone: its members' private state is saved before the step (`Agent.state_dict`); the plans it publishes are kept
until it commits; and its results are held, not committed, until the policy says the unit is settled (every
blocker released it). Trace rows and call records go out only at the commit, so an undone run leaves none.

Agents whose results are held may run their next step too, on top of them (a chain), as the clusters their held
positions form, with agents waiting at that step that those positions couple with: the step reads the held
states through an overlay of the state store (and observes the held agents there), and the policy adopts the
chained unit as the steps below it commit.

A conflict undoes a unit and every step chained on it: held results are dropped; runs in flight have their LLM
calls cancelled (engine/cancellable.py) and unwind at their next await, before any more agent code runs. Once all
of them have unwound, each agent's private state is restored to what it was before the first undone step it ran,
and the dispatcher releases them. A speculative unit runs its members as any unit does (together, engine/members.py),
and a unit's run ends only once every member has stopped, so an undone unit has no member still running on its own.

Runs apart (the policy's `apart`: a cluster's agents run as separate units, betting none touches another): a step
that touches an agent of its cluster running apart (`touch_apart`, asked by `ctx.partner` before anything is
written) undoes both parts' runs, its own by raising `Rollback` there; the rest of the cluster's runs stand. An undone
run's answers are kept for the step's next runs (`_reuse`). A step that says it will touch
nobody more (`ctx.no_more_partners`) may make its cluster's held runs final before it ends: the runtime's `wake`,
if it lent one, commits them as soon as the step yields (never inside agent code).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from metropolis.engine.agent import Agent, Observation, StepContext, StepHost, nearest_first
from metropolis.engine.cancellable import CancellableLLM, PendingCall, Rollback
from metropolis.engine.members import Journal, Tasks
from metropolis.engine.records import Plan
from metropolis.engine.state import AgentState, StateStore
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.scheduling.speculative import SpeculativeScheduler
from metropolis.scheduling.speculative_dispatch import SpeculativeDispatcher
from metropolis.scheduling.table import AgentTable
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.spatial import Pos
from metropolis.world.world import World

StepResult = tuple[StepContext, float, float]  # as the simulation's: a member's context and its time span


class SpeculationHost(Protocol):
    """What speculation needs of the simulation that owns it."""

    world: World
    agents: list[Agent]
    table: AgentTable
    store: StateStore
    seed: int
    members: str
    record_text: bool
    start_seconds: float

    def neighbors_at(self, me: int, step: int, pos: Pos, radius: float) -> list[Observation]: ...

    def publish_plan(self, agent: int, plan: Plan) -> None: ...

    def touch_apart(self, agent: int, other: int) -> None: ...

    def partners_closed(self, agent: int) -> None: ...

    def commit_now(self, unit: WorkUnit, results: list[StepResult]) -> None: ...

    def run_members(
        self,
        unit: WorkUnit,
        llm: LLMBackend | None,
        clock: Callable[[], float],
        tasks: Tasks | None,
        host: StepHost | None = None,
    ) -> Coroutine[Any, Any, list[StepResult]]: ...


@dataclass(slots=True)
class SpeculationStats:
    """What speculation did and cost: steps run ahead, units undone, and the tokens of their answers."""

    speculated: int = 0
    together: int = 0  # runs of units of several members (they run together, engine/members.py)
    undone_together: int = 0  # ... of which undone while they ran
    chained: int = 0
    rollbacks: int = 0
    cancelled_calls: int = 0
    wasted_calls: int = 0
    wasted_tokens: int = 0
    kept_tokens: int = 0
    apart_commits: int = 0  # held runs apart committed as soon as a step said it touches nobody more (`settle`)


@dataclass(slots=True)
class Undo:
    """The undoing of a unit and the steps chained on it: done when the last of them has unwound."""

    root: SpecRun
    runs: list[SpecRun] = field(default_factory=list)  # the root, the steps chained on it, undos merged in
    pending: int = 0


@dataclass(slots=True)
class SpecRun:
    """One speculative unit from dispatch to commit or undo."""

    unit: WorkUnit
    saved: dict[int, dict[str, Any]] | None = None  # members' private state before the step (once it started)
    results: list[StepResult] | None = None  # finished, waiting to be settled
    plans: list[tuple[int, Plan]] = field(default_factory=list)
    calls: set[PendingCall] = field(default_factory=set)
    used: list[tuple[LLMRequest, LLMResponse]] = field(default_factory=list)  # each call answered to the step
    error: Exception | None = None  # the step failed: raised if the unit settles, forgotten if it is undone
    doomed: bool = False
    undo: Undo | None = None


class Overlay(StepHost):
    """The simulation as a chained step sees it: the same, but for the held states of the unit it is chained on."""

    def __init__(self, sim: SpeculationHost, held: dict[tuple[int, int], AgentState]) -> None:
        self._sim = sim
        self.world, self.agents, self.seed = sim.world, sim.agents, sim.seed
        self.record_text, self.start_seconds = sim.record_text, sim.start_seconds
        self._held = held

    def state_at(self, agent: int, step: int) -> AgentState:
        state = self._held.get((agent, step))
        return state if state is not None else self._sim.store.at(agent, step)

    def neighbors_at(self, me: int, step: int, pos: Pos, radius: float) -> list[Observation]:
        """The simulation's answer, which leaves out the co-members still behind in the table, and those of them
        within `radius` at their held states. A held result committed since this unit was dispatched (a member
        that starts after another's LLM call) is in the simulation's answer already: it is the same state."""
        found = self._sim.neighbors_at(me, step, pos, radius)
        dist = self.world.metric.distance
        present = {o.agent_id for o in found}
        for (other, at), state in self._held.items():
            if other != me and at == step and other not in present and (d := dist(pos, state.pos)) <= radius:
                found.append(Observation(other, self.agents[other].name, state, d))
        found.sort(key=nearest_first)
        return found

    def publish_plan(self, agent: int, plan: Plan) -> None:
        self._sim.publish_plan(agent, plan)

    def touch_apart(self, agent: int, other: int) -> None:
        self._sim.touch_apart(agent, other)

    def partners_closed(self, agent: int) -> None:
        self._sim.partners_closed(agent)


class Speculation:
    """Buffers, validates and undoes the speculative units of one simulation (module docstring)."""

    def __init__(self, sim: SpeculationHost, policy: SpeculativeScheduler) -> None:
        self.sim = sim
        self.policy = policy
        self.dispatcher = SpeculativeDispatcher(sim.table, policy, self.on_conflict)
        policy.enable()
        self.stats = SpeculationStats()
        self._runs: dict[WorkUnit, SpecRun] = {}
        self._running: dict[int, SpecRun] = {}  # member -> its speculative run, while the step executes
        self._held: dict[tuple[int, int], SpecRun] = {}  # (member, step) -> a run whose results are held
        self._unwinding: list[Undo] = []  # undos waiting for runs in flight to unwind
        self._journals: dict[int, Journal] = {}  # step -> answers its undone runs got (`_keep_answers`)
        # Asks the runtime to call `settle` soon, outside agent code (None: held runs settle when a unit ends).
        self.wake: Callable[[], None] | None = None

    # -- what the simulation asks -----------------------------------------------------------------------------

    def covers(self, unit: WorkUnit) -> bool:
        """Whether speculation runs the unit: a bet (not a unit freed by routes, which runs as any other)."""
        return self.policy.is_bet(unit) or unit in self._runs

    def running(self, agent: int) -> bool:
        """Whether `agent` is executing a speculative step (its blockers are guessed away, not waited for), or a
        step its blockers' routes freed (they are kept away by promises the neighbour query does not know)."""
        return agent in self._running or self.policy.runs_promised(agent)

    def keep_plan(self, agent: int, plan: Plan) -> bool:
        """Hold a plan published inside a speculative step until it commits; False: publish it now."""
        run = self._running.get(agent)
        if run is None:
            return False
        run.plans.append((agent, plan))
        return True

    def touch_apart(self, agent: int, other: int) -> None:
        """`agent`'s step touches `other`: if the two run apart in one cluster, the bet is lost, and both parts'
        runs are undone, this one by the `Rollback` raised here."""
        if agent in self._running and self.policy.touches_apart(agent, other):
            for unit in self.policy.rejoin(agent, other):
                self.dispatcher.abort(unit)
            raise Rollback()

    def closed(self, agent: int) -> None:
        """`agent`'s step will touch nobody more: held runs of its cluster may settle (`wake`)."""
        if agent in self._running and self.policy.said(agent) and self.wake is not None:
            self.wake()

    def settle(self) -> None:
        """Commit the held runs that settled since a unit last ended (the runtime calls it after `wake`)."""
        self.stats.apart_commits += self._settle()

    async def execute(
        self, unit: WorkUnit, llm: LLMBackend | None, clock: Callable[[], float], tasks: Tasks | None
    ) -> list[StepResult]:
        run = self._runs.setdefault(unit, SpecRun(unit))
        if run.doomed:
            return []  # undone before it started
        self.stats.speculated += 1
        together = len(unit.members) > 1 and self.sim.members != "serial"
        self.stats.together += together
        agents = self.sim.agents
        run.saved = {a: agents[a].state_dict() for a in unit.members}
        host = self._overlay(unit)
        for a in unit.members:
            self._running[a] = run
        wrapped = CancellableLLM(llm, run, tasks, self._waste, self._reuse) if llm is not None else None
        try:
            return await self.sim.run_members(unit, wrapped, clock, tasks, host)
        except Rollback:
            self.stats.undone_together += together
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
            del self._runs[unit]
            self._keep_answers(run)
            assert run.undo is not None
            run.undo.pending -= 1
            self._finish_undo(run.undo)
        else:
            for a in unit.members:
                self.policy.said(a)  # it ended: it touches nobody more
            if self.policy.settled(unit):
                del self._runs[unit]
                self._commit(unit, results, run)
            else:
                self._hold(run, results)
                if run.error is None:
                    self.policy.offer_chain(unit.members, unit.step + 1, [ctx.pos for ctx, _, _ in results])
        self._settle()

    # -- what the dispatcher tells --------------------------------------------------------------------------

    def on_conflict(self, unit: WorkUnit) -> None:
        """`unit` was undone (its members wait again, held): undo it and every step chained on it."""
        self.stats.rollbacks += 1
        root = self._runs.setdefault(unit, SpecRun(unit))
        chained = [self._runs.setdefault(u, SpecRun(u)) for u in self.policy.chained_above(unit)]
        undo = Undo(root, [root, *chained])
        for run in undo.runs:
            if run is not root:
                self.dispatcher.drop_chain(run.unit)
            run.doomed, run.undo = True, undo
            if run.results is not None:  # finished already: drop what it holds
                self._unhold(run)
                del self._runs[run.unit]
                self._keep_answers(run)
                continue
            undo.pending += 1
            for call in list(run.calls):
                self.stats.cancelled_calls += 1
                call.cancel()
        self._merge_unwinding(undo)
        self._finish_undo(undo)

    def _merge_unwinding(self, undo: Undo) -> None:
        """Join the undos still unwinding that share an agent with `undo`: a step chained on results of two units
        can be undone with either, and the agent must come back to its state before the first of its undone steps,
        once, when all of them have unwound."""
        agents = {a for run in undo.runs for a in run.unit.members}
        merged = True
        while merged:
            merged = False
            for other in self._unwinding:
                if agents.isdisjoint(a for run in other.runs for a in run.unit.members):
                    continue
                self._unwinding.remove(other)
                for run in other.runs:
                    run.undo = undo
                    agents.update(run.unit.members)
                undo.runs.extend(other.runs)
                undo.pending += other.pending
                merged = True
                break
        if undo.pending:
            self._unwinding.append(undo)

    # -- inside -----------------------------------------------------------------------------------------------

    def _overlay(self, unit: WorkUnit) -> StepHost | None:
        """For a chained step: the simulation with its agents' held states at this step."""
        held: dict[tuple[int, int], AgentState] = {}
        for a in unit.members:
            below = self._held.get((a, unit.step - 1))
            if below is not None and below.results:  # else committed already (or it joined): the store has it
                ctx = next(c for c, _, _ in below.results if c.agent_id == a)
                held[a, unit.step] = ctx.result()
        if not held:
            return None
        self.stats.chained += 1
        return Overlay(self.sim, held)

    def _waste(self, tokens: int) -> None:
        """An abandoned call was answered anyway: its tokens bought nothing."""
        self.stats.wasted_calls += 1
        self.stats.wasted_tokens += tokens
        self.policy.record_tokens(0, tokens)

    def _keep_answers(self, run: SpecRun) -> None:
        """Every answer an undone step got, whether it finished (held results) or unwound half-way, is kept for
        the step's next runs (`_reuse`): an unchanged request takes it, as a restarted member's does
        (engine/members.py). What no run took once every agent has passed the step bought nothing (`_forget`)."""
        if run.used:
            self._journals.setdefault(run.unit.step, Journal()).put_back(run.used)

    def _reuse(self, request: LLMRequest) -> LLMResponse | None:
        journal = self._journals.get(request.step)
        return journal.take(request) if journal is not None else None

    def _forget(self, gvt: int) -> None:
        """Count the kept answers of steps every agent has passed as wasted."""
        for step in [s for s in self._journals if s < gvt]:
            left = self._journals.pop(step).left_over()
            wasted = sum(r.prompt_tokens + r.completion_tokens for r in left)
            self.stats.wasted_calls += len(left)
            self.stats.wasted_tokens += wasted
            self.policy.record_tokens(0, wasted)

    def _finish_undo(self, undo: Undo) -> None:
        """Once every undone step has unwound: restore each agent's state from before the first undone step it
        ran, and release them all."""
        if undo.pending:
            return
        if undo in self._unwinding:
            self._unwinding.remove(undo)
        agents, restored = self.sim.agents, set()
        for run in sorted(undo.runs, key=lambda r: r.unit.step):
            for a, state in (run.saved or {}).items():
                if a not in restored:
                    restored.add(a)
                    agents[a].load_state_dict(state)
        for run in undo.runs:
            self.dispatcher.release(run.unit)

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
        if self._journals:
            self._forget(self.sim.table.gvt())

    def _settle(self) -> int:
        """Commit every held unit that is now settled, lowest step first; a commit may settle more. Only the
        units of members the policy released since the last look can have settled. Returns how many it committed."""
        committed = 0
        while True:
            ready = {}
            for agent in self.policy.take_released():
                run = self._held.get((agent, self.sim.table.step[agent]))
                if run is not None and run.unit in self._runs and self.policy.settled(run.unit):
                    ready[run.unit] = run
            if not ready:
                return committed
            for run in sorted(ready.values(), key=lambda r: (r.unit.step, r.unit.members)):
                if run.unit in self._runs:
                    self._unhold(run)
                    del self._runs[run.unit]
                    assert run.results is not None
                    self._commit(run.unit, run.results, run)
                    committed += 1

    def _hold(self, run: SpecRun, results: list[StepResult]) -> None:
        run.results = results
        for a in run.unit.members:
            self._held[a, run.unit.step] = run

    def _unhold(self, run: SpecRun) -> None:
        for a in run.unit.members:
            self._held.pop((a, run.unit.step), None)
