"""The oracle schedules a recorded run by its real dependencies: same result, never slower."""

from __future__ import annotations

import pytest

from metropolis.engine import Agent, CallRecord, Simulation, StepContext, StepRecord
from metropolis.engine.simulation import SchedulerFactory
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.scheduling import DependencyGraph, Dispatcher, OracleScheduler
from tests.scenarios import outcome, walker_sim
from tests.test_runtime import TALKY, VirtualDelayLLM


class Recorder:
    """Keeps records in arrival order; the engine reports a step's calls just before the step itself."""

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.calls_by_step: dict[tuple[int, int], list[CallRecord]] = {}
        self._pending: list[CallRecord] = []

    def on_call(self, record: CallRecord) -> None:
        self._pending.append(record)

    def on_step(self, record: StepRecord) -> None:
        self.steps.append(record)
        self.calls_by_step[(record.agent, record.step)] = self._pending
        self._pending = []


class Replayer(Agent):
    """Replays a recorded agent: the same moves, actions, utterances and LLM calls, in the same order."""

    def __init__(self, name: str, pos: tuple[int, int], me: int, rec: Recorder) -> None:
        super().__init__(name, pos, action="walking")
        self.me, self.rec = me, rec
        self.by_step = {r.step: r for r in rec.steps if r.agent == me}

    async def step(self, ctx: StepContext) -> None:
        recorded = self.by_step[ctx.step]
        for p in recorded.partners:
            ctx.partner(p)
        for call in self.rec.calls_by_step[(self.me, ctx.step)]:
            await ctx.llm_for(call.agent, call.function, "replayed", max_tokens=call.output_tokens)
        ctx.move(recorded.state.pos)
        ctx.act(recorded.state.action)
        for event in recorded.state.events:
            ctx.say(event)


def record_serial() -> tuple[Simulation, Recorder]:
    sim = walker_sim(14, "serial", size=18, steps=15, config=TALKY)
    rec = Recorder()
    sim.listeners.append(rec)
    env = Environment()
    VirtualRuntime(sim, env, VirtualDelayLLM(env)).run()
    return sim, rec


def replay(sim: Simulation, rec: Recorder, scheduler: str) -> tuple[Simulation, float]:
    agents = [Replayer(a.name, a.start_pos, i, rec) for i, a in enumerate(sim.agents)]
    chosen: str | SchedulerFactory = scheduler
    if scheduler == "oracle":
        graph = DependencyGraph.from_steps(rec.steps, len(agents), sim.until)
        chosen = lambda world, table: OracleScheduler(world, table, graph)  # noqa: E731
    new = Simulation(sim.world, agents, until=sim.until, scheduler=chosen, keep_history=True)
    env = Environment()
    report = VirtualRuntime(new, env, VirtualDelayLLM(env)).run()
    return new, report.duration


def test_oracle_reproduces_the_run_and_bounds_the_conservative_policies() -> None:
    sim, rec = record_serial()
    durations = {}
    for name in ("serial", "lockstep", "metropolis", "oracle"):
        replayed, durations[name] = replay(sim, rec, name)
        assert outcome(replayed)[0] == outcome(sim)[0], name
    assert durations["oracle"] <= durations["metropolis"] < durations["lockstep"] < durations["serial"]


def test_dependency_graph_units_and_waits() -> None:
    class R:
        def __init__(self, agent: int, step: int, observed: tuple = (), partners: tuple = ()) -> None:
            self.agent, self.step, self.observed, self.partners = agent, step, observed, partners

    records = [R(0, 0), R(1, 0, partners=(2,)), R(2, 0), R(0, 1, observed=(2,)), R(1, 1), R(2, 1)]
    g = DependencyGraph.from_steps(records, agents=3, steps=2)
    assert [(u.step, u.members) for u in g.units] == [(0, (0,)), (0, (1, 2)), (1, (0,)), (1, (1,)), (1, (2,))]
    assert g.waits_for == [[], [], [0, 1], [1], [1]]
    with pytest.raises(ValueError, match="outside 3 agents x 2 steps"):
        DependencyGraph.from_steps([R(5, 0)], agents=3, steps=2)


def test_oracle_is_not_a_live_policy() -> None:
    sim, _ = record_serial()
    with pytest.raises(ValueError, match="recorded run"):
        Dispatcher.of("oracle", sim.world, [(0, 0)], 1)
