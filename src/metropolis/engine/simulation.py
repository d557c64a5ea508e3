"""The engine core: agents, their versioned state, the run's agent table and a scheduling policy, with no notion
of time or threads.

A runtime drives it with three verbs: `pop_ready` (a unit that may run now), `execute` (a coroutine that runs the
unit's agent steps), and `commit` (record the results and let the policy release what they unblock). The
simulation owns the agent table (steps, status, positions, GVT); its dispatcher is the only writer, at dispatch and
at commit.
Whoever wants to follow the run attaches a listener (trace, accounting, serving memory); the core knows none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from metropolis.engine.agent import Agent, Observation, StepContext, StepHost, nearest_first
from metropolis.engine.members import KernelTasks, MemberRun, Tasks, UnitRun, UnitStats, run_alone
from metropolis.engine.records import CallListener, Listener, Plan, StepRecord
from metropolis.engine.snapshots import StepSnapshots
from metropolis.engine.speculation import Speculation
from metropolis.engine.state import AgentState, StateStore
from metropolis.kernel import Environment
from metropolis.llm.types import LLMBackend
from metropolis.registry import check_name
from metropolis.scheduling import AgentTable, AgentView, CausalityChecker, Scheduler, WorkUnit, make_scheduler
from metropolis.scheduling.dispatch import Dispatcher
from metropolis.scheduling.rules import may_have_reached
from metropolis.scheduling.speculative import SpeculativeScheduler
from metropolis.world.metrics import near_distance
from metropolis.world.spatial import Pos
from metropolis.world.world import World

SchedulerFactory = Callable[[World, AgentView], Scheduler]
StepResult = tuple[StepContext, float, float]  # a member's context and the time span of its step
MEMBER_MODES = ("concurrent", "serial")


class Simulation(StepHost):
    """One run: every agent from step 0 to step `until` under one scheduling policy."""

    def __init__(
        self,
        world: World,
        agents: Sequence[Agent],
        *,
        until: int,
        scheduler: str | SchedulerFactory = "metropolis",
        priority: bool = True,
        seed: int = 0,
        check_causality: bool = False,
        keep_history: bool = False,
        record_text: bool = False,
        start_seconds: float = 0.0,
        members: str = "concurrent",
    ) -> None:
        if not agents:
            raise ValueError("a simulation needs at least one agent")
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"agent names must be unique; repeated: {', '.join(dup)}")
        check_name(members, MEMBER_MODES, "member execution")
        self.members = members  # how a unit's coupled members run: together (engine/members.py) or in order
        self.member_stats = UnitStats()  # restarts and wasted LLM answers of members run together
        self.world = world
        self.agents = list(agents)
        for i, agent in enumerate(self.agents):
            agent.unique_id = i
        initial = [a.initial_state() for a in self.agents]
        for agent, state in zip(self.agents, initial, strict=True):
            if world.tilemap is not None and not world.tilemap.is_walkable(state.pos):
                raise ValueError(f"agent {agent.name} starts on tile {state.pos}, which is not walkable")
        self.until = until
        self.table = AgentTable(world, [s.pos for s in initial], until)
        self.store = StateStore(initial, self.table, keep_all=keep_history)
        if isinstance(scheduler, str):
            self.scheduler = make_scheduler(scheduler, world, self.table, priority=priority)
        else:
            self.scheduler = scheduler(world, self.table)
        # Read once: a policy's class constant is a lookup through Python compiled, and observing asks it each time.
        self._replays_recorded = self.scheduler.replays_recorded
        self.speculation: Speculation | None = None  # set when the policy runs units ahead of their blockers
        if isinstance(self.scheduler, SpeculativeScheduler):
            self.speculation = Speculation(self, self.scheduler)
            self.dispatcher: Dispatcher = self.speculation.dispatcher
        else:
            self.dispatcher = Dispatcher(self.table, self.scheduler)
        self.checker: CausalityChecker | None = None
        if check_causality:
            self.checker = CausalityChecker(world, self.table, keeps_invariant=self.scheduler.keeps_invariant)
            self.dispatcher.observers.append(self.checker)
        self.seed = seed
        self.record_text = record_text
        self.start_seconds = start_seconds
        self.listeners: list[Listener] = []
        # Listeners that want only the call records (the accounting): no step record is built for them.
        self.call_listeners: list[CallListener] = []
        self.plan_listeners: list[Callable[[int, Plan], object]] = []  # told as soon as an agent publishes a plan
        self.agent_steps = 0
        self._collected_gvt = 0
        self._near_distance = near_distance(world.metric)  # `neighbors_at` measures only pairs its index found
        # Positions as of each step, for `neighbors_at` under policies that dispatch clear (engine/snapshots.py).
        self.snapshots = StepSnapshots(world.metric, self.table) if self.scheduler.dispatches_clear else None

    # -- the runtime's verbs ----------------------------------------------------------------------------------

    def pop_ready(self) -> WorkUnit | None:
        return self.dispatcher.pop_ready()

    @property
    def units_dispatched(self) -> int:
        return self.dispatcher.units_dispatched

    def done(self) -> bool:
        return self.table.done()

    def execute(
        self, unit: WorkUnit, llm: LLMBackend | None, clock: Callable[[], float], tasks: Tasks | None = None
    ) -> Coroutine[Any, Any, list[StepResult]]:
        """The coroutine that runs the unit's members and returns each member's context and time span
        (`execute_unit`), or lets speculation run a unit it covers.

        A plain function handing out the coroutine that does the work, not a coroutine awaiting it: a unit's
        every resume then passes one frame fewer (nothing runs before the first resume either way)."""
        if self.speculation is not None:
            return self._execute_speculative(unit, llm, clock, tasks)
        if self.members == "serial" or len(unit.members) == 1:
            return steps_in_order(self, unit, llm, clock)
        return execute_unit(self, unit, llm, clock, tasks, False, self.member_stats)

    async def _execute_speculative(
        self, unit: WorkUnit, llm: LLMBackend | None, clock: Callable[[], float], tasks: Tasks | None
    ) -> list[StepResult]:
        """Whether speculation covers the unit is asked when it starts, not when it is dispatched."""
        assert self.speculation is not None
        if self.speculation.covers(unit):
            return await self.speculation.execute(unit, llm, clock, tasks)
        return await self.run_members(unit, llm, clock, tasks)

    def run_members(
        self,
        unit: WorkUnit,
        llm: LLMBackend | None,
        clock: Callable[[], float],
        tasks: Tasks | None,
        host: StepHost | None = None,
    ) -> Coroutine[Any, Any, list[StepResult]]:
        """The unit's members as this simulation runs them (`execute_unit`: together, or one after another under
        `members="serial"`); `host`: what the steps see instead of this simulation (a speculative step chained on
        a held one)."""
        return execute_unit(host or self, unit, llm, clock, tasks, self.members == "serial", self.member_stats)

    def commit(self, unit: WorkUnit, results: list[StepResult]) -> None:
        """A unit's run ended: record its results, or hand them to speculation to hold or drop."""
        if self.speculation is not None:
            self.speculation.finished(unit, results)
        else:
            self.commit_now(unit, results)

    def commit_now(self, unit: WorkUnit, results: list[StepResult]) -> None:
        store, listeners, call_listeners = self.store, self.listeners, self.call_listeners
        step = unit.step
        positions, promises = [], []
        snapshots = self.snapshots
        for ctx, start, end in results:
            state = ctx.result()
            store.commit(ctx.agent_id, step, state)
            if snapshots is not None:
                snapshots.arrived(ctx.agent_id, step + 1, state)
            positions.append(state.pos)
            promises.append(ctx.still_until)
            self.agent_steps += 1  # before the listeners hear of it: a checkpoint cut counts this step
            if listeners:
                self._report(ctx, state, start, end)
            if call_listeners and ctx.calls:
                for listener in call_listeners:
                    for call in ctx.calls:
                        listener.on_call(call)
        self.dispatcher.complete(unit, positions, promises)
        gvt = self.table.gvt()
        if gvt > self._collected_gvt:
            self._collected_gvt = gvt
            self.store.collect(gvt)
            if snapshots is not None:
                snapshots.collect(gvt)

    def state_at(self, agent: int, step: int) -> AgentState:
        return self.store.at(agent, step)

    def publish_plan(self, agent: int, plan: Plan) -> None:
        """An agent said when it will next call the LLM (`StepContext.plan`): tell whoever listens, now (a
        speculative step's plans at its commit)."""
        if self.speculation is not None and self.speculation.keep_plan(agent, plan):
            return
        for listener in self.plan_listeners:
            listener(agent, plan)

    def _report(self, ctx: StepContext, state: AgentState, start: float, end: float) -> None:
        record = StepRecord(
            agent=ctx.agent_id,
            name=self.agents[ctx.agent_id].name,
            step=ctx.step,
            state=state,
            observed=tuple(sorted(ctx.observed)),
            partners=tuple(sorted(ctx.partners)),
            llm_calls=len(ctx.calls),
            start=start,
            end=end,
            plan=ctx.published_plan,
        )
        for listener in self.listeners:
            for call in ctx.calls:
                listener.on_call(call)
            listener.on_step(record)

    # -- queries agents make through their context ------------------------------------------------------------

    def touch_apart(self, agent: int, other: int) -> None:
        if self.speculation is not None:
            self.speculation.touch_apart(agent, other)

    def partners_closed(self, agent: int) -> None:
        if self.speculation is not None:
            self.speculation.closed(agent)

    def neighbors_at(self, me: int, step: int, pos: Pos, radius: float) -> list[Observation]:
        """Agents within `radius` of `pos` as of `step`.

        Under a policy that dispatches clear, the index of positions as of `step` is asked (engine/snapshots.py).
        Otherwise agents ahead have moved at most V per step since `step`, so the table's index is asked for a
        radius widened by that, each candidate is checked at its position as of `step`, and agents behind are
        checked to be still too far to matter.
        """
        if self._replays_recorded:
            raise RuntimeError(
                f"agent {self.agents[me].name} observed under the {self.scheduler.name} policy, which orders a "
                "recorded run's steps by the dependencies recorded then: live agents that observe need serial, "
                "lockstep or metropolis"
            )
        states, base = self.store.states_from(step)
        agents, dist = self.agents, self._near_distance
        found = []
        if self.snapshots is not None:
            candidates: Iterable[int] = self.snapshots.near(step, pos, radius, states, base)
        else:
            candidates = self._at_step(me, step, pos, radius)
        for other in candidates:
            if other == me:  # running `step`
                continue
            state = states[other][step - base[other]]
            d = dist.between(pos, state.pos)
            if d <= radius:
                found.append(Observation(other, agents[other].name, state, d))
        if len(found) > 1:
            found.sort(key=nearest_first)
        return found

    def _at_step(self, me: int, step: int, pos: Pos, radius: float) -> list[int]:
        """The agents that may stand within `radius` of `pos` at `step`, all of them there already: one still
        behind that the rules do not keep away is a causality error (but where `me` runs a speculative step)."""
        table, V, dist = self.table, self.world.max_velocity, self._near_distance
        reach = radius + max(0, table.max_step - step) * V
        steps, latest, still = table.step, table.pos, table.still_until
        at_step = []
        for other in table.near(pos, reach):
            so = steps[other]
            if so < step:
                # Not at `step` yet: the rules keep it farther than `radius` even after the moves it has left.
                st = still[other]
                moves = step - (so if so >= st else st)
                if may_have_reached(dist.between(pos, latest[other]), moves if moves > 0 else 0, radius, V) and not (
                    self.speculation is not None and self.speculation.running(me)
                ):  # a speculative step guesses it stays away; the commit waits until it has
                    raise RuntimeError(
                        f"causality: agent {me} at step {step} may observe agent {other}, still at step {so}"
                    )
                continue
            at_step.append(other)
        return at_step

    def history(self, agent: int) -> list[AgentState]:
        return self.store.history(agent)


async def steps_in_order(
    host: StepHost, unit: WorkUnit, llm: LLMBackend | None, clock: Callable[[], float]
) -> list[StepResult]:
    """The unit's members one after another, each seeing the one before it done: the serial order."""
    out = []
    for agent_id in unit.members:
        ctx = StepContext(host, agent_id, unit.step, unit.group, llm)
        start = clock()
        await host.agents[agent_id].step(ctx)
        out.append((ctx, start, clock()))
    return out


async def execute_unit(
    host: StepHost,
    unit: WorkUnit,
    llm: LLMBackend | None,
    clock: Callable[[], float],
    tasks: Tasks | None,
    serial: bool,
    stats: UnitStats,
) -> list[StepResult]:
    """Run a unit's members on `host` (the simulation, or a Ray worker's copy of what the unit may see): together,
    with the result of the serial order (engine/members.py), or one after another when `serial`. `tasks` is what
    the runtime lends to run coroutines together; without it, members that make no LLM calls still run together
    on a private kernel. What the members' restarts cost is added to `stats`."""
    if serial or len(unit.members) == 1:
        return await steps_in_order(host, unit, llm, clock)

    async def step(k: int, run: MemberRun | None) -> StepResult:
        agent_id = unit.members[k]
        ctx = StepContext(host, agent_id, unit.step, unit.group, llm, run)
        start = clock()
        await host.agents[agent_id].step(ctx)
        return ctx, start, clock()

    agents = host.agents
    env = Environment() if tasks is None else None
    together = UnitRun(
        unit.members,
        tasks if tasks is not None else KernelTasks(env),  # type: ignore[arg-type]
        lambda a: agents[a].state_dict(),
        lambda a, d: agents[a].load_state_dict(d),
        step,
    )
    results = await together.run() if env is None else run_alone(env, together)
    stats.add(together.stats)
    return results
