"""ScaleSim's `independent` and `diffusion` workload classes: generated with seeds, saved and replayed, and run
through the engine (diffusion on the graph world of its follower graph), with their invocation distances."""

import itertools
from pathlib import Path

import pytest

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.engine.state import AgentState
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.workloads.diffusion import (
    DiffusionConfig,
    FrontDistance,
    diffusion_simulation,
    generate_diffusion,
    parse_actions,
)
from metropolis.workloads.independent import IndependentConfig, generate_independent, independent_simulation
from metropolis.workloads.schedule import Burst, CallSchedule


class Calls:
    def __init__(self) -> None:
        self.log: list[tuple[int, int, str]] = []

    def on_step(self, record: StepRecord) -> None:
        """Steps are not logged."""

    def on_call(self, record: CallRecord) -> None:
        self.log.append((record.agent, record.step, record.function))


def calls_of(sim: Simulation) -> list[tuple[int, int, str]]:
    calls = Calls()
    sim.listeners.append(calls)
    env = Environment()
    VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset("l4-llama3-8b")))).run()
    return sorted(calls.log)


def expected(schedule: CallSchedule) -> list[tuple[int, int, str]]:
    return sorted((a, b.step, b.action) for a, bs in enumerate(schedule.bursts) for b in bs for _ in range(b.calls))


def test_independent_plans_are_exact_and_a_saved_schedule_replays_the_same_calls(tmp_path: Path) -> None:
    schedule = generate_independent(IndependentConfig(agents=12, steps=40, seed=3))
    assert schedule == generate_independent(IndependentConfig(agents=12, steps=40, seed=3))  # seeded
    for first, bursts in zip(schedule.first_plans, schedule.bursts, strict=True):
        assert bursts[0].step == first if bursts else first >= 40  # a long first action outlasts the window
        assert all(b.plan == nxt.step for b, nxt in itertools.pairwise(bursts))
    schedule.save(tmp_path / "independent.json")
    loaded = CallSchedule.load(tmp_path / "independent.json")
    assert loaded == schedule
    for scheduler in ("lockstep", "metropolis"):
        assert calls_of(independent_simulation(loaded, scheduler)) == expected(schedule)


def test_diffusion_spreads_over_the_follower_graph_and_runs_on_its_graph_world(tmp_path: Path) -> None:
    cfg = DiffusionConfig(agents=60, steps=40, posts=2, repost_prob=0.5, seed=1)
    schedule = generate_diffusion(cfg)
    assert schedule == generate_diffusion(cfg) and schedule.edges
    neighbours: dict[int, set[int]] = {}
    for u, v in schedule.edges:
        neighbours.setdefault(u, set()).add(v)
        neighbours.setdefault(v, set()).add(u)
    shared: dict[int, list[tuple[int, int]]] = {}  # post -> (step, agent) of its posts and reposts
    for agent, bursts in enumerate(schedule.bursts):
        for b in bursts:
            for verb, post in parse_actions(b.action):
                if verb != "read":
                    shared.setdefault(post, []).append((b.step, agent))
    for agent, bursts in enumerate(schedule.bursts):  # every read follows an earlier share by a followee
        for b in bursts:
            for verb, post in parse_actions(b.action):
                if verb != "post":
                    assert any(s < b.step and a in neighbours[agent] for s, a in shared[post])
    schedule.save(tmp_path / "diffusion.json")
    loaded = CallSchedule.load(tmp_path / "diffusion.json")
    sim = diffusion_simulation(loaded, "metropolis")
    assert sim.world.graph is not None and sim.world.graph.number_of_edges() == len(schedule.edges)
    assert calls_of(sim) == expected(schedule)


def test_the_front_estimates_followers_by_hops_and_forgets_a_front_that_did_not_come() -> None:
    edges = ((0, 1), (1, 2), (2, 3))
    bursts = ((Burst(0, 1, "post 0", 20),), (), (), ())
    schedule = CallSchedule("diffusion", 0, 20, bursts, (0, 20, 20, 20), edges, params={"hop_steps": 2.0})
    published: list[tuple[int, int]] = []
    front = FrontDistance(schedule, lambda a, plan: published.append((a, plan.next_call)), lambda a: 0, horizon=2)

    def record(agent: int, step: int, action: str) -> StepRecord:
        state = AgentState(pos=(agent, 0), action=action)
        return StepRecord(agent, f"agent-{agent}", step, state, (), (), 1, 0.0, 0.0, None)

    front.on_step(record(0, 0, "post 0"))
    assert sorted(published) == [(0, 20), (1, 2), (2, 4)]  # the poster: nothing; 1 hop: 2 steps, 2 hops: 4; 3: beyond
    published.clear()
    front.on_step(record(1, 2, "read 0"))  # agent 1 read it and did not repost
    assert published == [(1, 20)]  # nothing left for it: the end of the window
    published.clear()
    front.on_step(record(2, 4, "idle"))  # agent 2's expected read did not come
    assert published == [(2, 20)]


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct, sorted"):
        CallSchedule("independent", 0, 5, ((Burst(3, 1, "x"), Burst(1, 1, "x")),), (None,))
    with pytest.raises(ValueError, match="plans its next call earlier"):
        Burst(3, 1, "x", plan=2)
    with pytest.raises(ValueError, match="more agents than the degree"):
        DiffusionConfig(agents=4)
