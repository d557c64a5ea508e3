"""The engine core: agents, their versioned state, and a scheduling policy, with no notion of time or threads.

A runtime drives it with three verbs: `pop_ready` (a unit that may run now), `execute` (a coroutine that runs the
unit's agent steps), and `commit` (record the results and let the scheduler release what they unblock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from metropolis.engine.agent import Agent
from metropolis.engine.context import Observation, StepContext
from metropolis.engine.records import Listener, StepRecord
from metropolis.engine.state import AgentState, StateStore
from metropolis.llm.types import LLMBackend, LLMRequest
from metropolis.memory.live import LiveDistance
from metropolis.scheduling import CausalityChecker, Scheduler, WorkUnit, make_scheduler
from metropolis.world.spatial import Pos
from metropolis.world.world import World


class Simulation:
    """One run: `steps` steps of every agent under one scheduling policy."""

    def __init__(
        self,
        world: World,
        agents: Sequence[Agent],
        *,
        steps: int,
        scheduler: str | Scheduler = "metropolis",
        priority: bool = True,
        seed: int = 0,
        check_causality: bool = False,
        keep_history: bool = False,
        record_text: bool = False,
        start_seconds: float = 0.0,
    ) -> None:
        if not agents:
            raise ValueError("a simulation needs at least one agent")
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"agent names must be unique; repeated: {', '.join(dup)}")
        self.world = world
        self.agents = list(agents)
        for i, agent in enumerate(self.agents):
            agent.unique_id = i
        initial = [a.initial_state() for a in self.agents]
        for agent, state in zip(self.agents, initial, strict=True):
            if world.tilemap is not None and not world.tilemap.is_walkable(state.pos):
                raise ValueError(f"agent {agent.name} starts on tile {state.pos}, which is not walkable")
        self.store = StateStore(initial, keep_all=keep_history)
        self.scheduler: Scheduler
        if isinstance(scheduler, Scheduler):
            if scheduler.n != len(initial) or scheduler.until != steps:
                raise ValueError(
                    f"the scheduler was built for {scheduler.n} agents and {scheduler.until} steps, "
                    f"the simulation has {len(initial)} agents and {steps} steps"
                )
            self.scheduler = scheduler
        else:
            self.scheduler = make_scheduler(scheduler, world, [s.pos for s in initial], steps, priority=priority)
        self.checker: CausalityChecker | None = None
        if check_causality:
            self.checker = CausalityChecker()
            self.scheduler.observers.append(self.checker)
        self.steps = steps
        self.seed = seed
        self.record_text = record_text
        self.start_seconds = start_seconds
        self.listeners: list[Listener] = []
        self.commit_hooks: list[Callable[[], object]] = []  # called after every commit (e.g. memory prefetch)
        self._distance: LiveDistance | None = None
        self.agent_steps = 0
        self.llm_calls = 0
        self._collected_gvt = 0
        self._max_step = 0

    # -- the runtime's verbs ----------------------------------------------------------------------------------

    def pop_ready(self) -> WorkUnit | None:
        return self.scheduler.pop_ready()

    def done(self) -> bool:
        return self.scheduler.done()

    async def execute(
        self, unit: WorkUnit, llm: LLMBackend | None, clock: Callable[[], float]
    ) -> list[tuple[StepContext, float, float]]:
        """Run the unit's members one after another, in order; returns each member's context and time span."""
        out = []
        for agent_id in unit.members:
            ctx = StepContext(self, agent_id, unit.step, unit.group, llm)
            start = clock()
            await self.agents[agent_id].step(ctx)
            out.append((ctx, start, clock()))
        return out

    def commit(self, unit: WorkUnit, results: list[tuple[StepContext, float, float]]) -> None:
        states = [ctx.result() for ctx, _, _ in results]
        for (ctx, start, end), state in zip(results, states, strict=True):
            self.store.commit(ctx.agent_id, unit.step, state)
            self.agent_steps += 1
            self.llm_calls += len(ctx.calls)
            if self.listeners:
                self._report(ctx, state, start, end)
        self.scheduler.complete(unit, [s.pos for s in states])
        self._max_step = max(self._max_step, unit.step + 1)
        gvt = self.scheduler.gvt()
        if gvt > self._collected_gvt:
            self._collected_gvt = gvt
            self.store.collect(gvt)
        for hook in self.commit_hooks:
            hook()

    # -- invocation distance, live (agent-aware serving memory) -----------------------------------------------

    def track_distances(self, *, spatial: bool = False) -> LiveDistance:
        """Start keeping every agent's invocation distance (`invocation_distance`); plans come from requests."""
        if self._distance is None:
            self._distance = LiveDistance(self.scheduler, spatial=spatial)
        return self._distance

    def invocation_distance(self, agent: int) -> float:
        """Steps until `agent` next calls the LLM, as the scheduler and its plan hints tell (math.inf: done)."""
        return self.track_distances().distance(agent)

    def observe_request(self, request: LLMRequest) -> None:
        """Every LLM request passes here before it is sent: its hints feed the invocation distance."""
        if self._distance is not None:
            self._distance.observe(request)

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
        )
        for listener in self.listeners:
            for call in ctx.calls:
                listener.on_call(call)
            listener.on_step(record)

    # -- queries agents make through their context ------------------------------------------------------------

    def neighbors_at(self, me: int, step: int, pos: Pos, radius: float) -> list[Observation]:
        """Agents within `radius` of `pos` as of `step`.

        Agents ahead have moved at most V per step since `step`, so the index is asked for a radius widened by
        that, and each candidate is then checked at its position as of `step`.
        """
        sched = self.scheduler
        reach = radius + max(0, self._max_step - step) * self.world.max_velocity
        dist = self.world.metric.distance
        found = []
        for other in sched.index.near(pos, reach):
            if other == me:
                continue
            behind = step - self.store.step_of(other)
            if behind > 0:
                # Not at `step` yet: the rules keep it farther than `radius` even after `behind` more moves.
                latest = self.store.latest(other).pos
                if dist(pos, latest) - behind * self.world.max_velocity <= radius:
                    raise RuntimeError(
                        f"causality: agent {me} at step {step} may observe agent {other}, still at step {step - behind}"
                    )
                continue
            state = self.store.at(other, step)
            d = dist(pos, state.pos)
            if d <= radius:
                found.append(Observation(other, self.agents[other].name, state, d))
        found.sort(key=lambda o: (o.distance, o.agent_id))
        return found

    def history(self, agent: int) -> list[AgentState]:
        return self.store.history(agent)
