"""Invocation distance: each policy's own wait (`wait_steps`), published plans, the spatial bound, and the live
sum of them that serving memory reads."""

import math
import random

import pytest

from metropolis.agents.randomwalk import RandomWalker
from metropolis.engine.records import Plan
from metropolis.engine.simulation import Simulation
from metropolis.runtime.serving_memory import track_invocation_distance
from metropolis.scheduling import AgentTable, Dispatcher, Scheduler, Status
from metropolis.scheduling.invocation import PlanBook, SpatialBound
from metropolis.scheduling.lockstep import LockstepScheduler
from metropolis.workloads.scaling import TownsMetric
from metropolis.world.metrics import nearest_others
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World


def world() -> World:
    return World(tilemap=TileMap.open(20, 20), perception_radius=4.0, max_velocity=1.0)


def run_one(d: Dispatcher) -> list[int]:
    """Dispatch the next unit and commit it in place; its members."""
    unit = d.pop_ready()
    assert unit is not None
    d.complete(unit, [d.table.pos[a] for a in unit.members])
    return list(unit.members)


def test_metropolis_ready_running_and_blocked():
    d = Dispatcher.of("metropolis", world(), [(0, 0), (7, 0), (19, 19)], until=10)
    wait = d.policy.wait_steps
    assert [wait(a) for a in range(3)] == [0.0, 0.0, 0.0]  # all ready
    units = [d.pop_ready() for _ in range(3)]
    assert [u.members for u in units if u] == [(0,), (1,), (2,)]
    d.complete(units[1], [(7, 0)])  # agent 1 reaches step 1: d = 7 > 2V + R, still free
    d.complete(d.pop_ready(), [(7, 0)])  # step 2: d = 7 <= 3V + R, agent 0 (2 steps back) blocks it
    assert d.policy.blocked_by[1] == {0}
    assert [wait(a) for a in range(3)] == [0.0, 2.0, 0.0]  # 0 and 2 are running


def test_done_is_infinite_under_every_policy():
    for name in ("serial", "lockstep", "metropolis"):
        d = Dispatcher.of(name, world(), [(0, 0)], until=1)
        run_one(d)
        assert d.policy.wait_steps(0) == math.inf, name


def test_serial_wait_is_the_place_in_the_loop():
    d = Dispatcher.of("serial", world(), [(0, 0), (5, 5), (10, 10), (15, 15)], until=3)
    wait = d.policy.wait_steps
    first = d.pop_ready()  # agent 0 runs
    assert first is not None and first.members == (0,)
    assert [wait(a) for a in range(4)] == [0.0, 0.25, 0.5, 0.75]
    d.complete(first, [(0, 0)])
    d.pop_ready()  # agent 1 runs; agent 0 waits for step 1, after 2 and 3
    assert [wait(a) for a in range(4)] == [0.75, 0.0, 0.25, 0.5]


def test_lockstep_waiters_queue_behind_the_barrier():
    d = Dispatcher.of("lockstep", world(), [(0, 0), (5, 5), (10, 10), (15, 15)], until=3)
    wait = d.policy.wait_steps
    units = [d.pop_ready() for _ in range(4)]
    assert [wait(a) for a in range(4)] == [0.0] * 4
    d.complete(units[0], [(0, 0)])
    d.complete(units[1], [(5, 5)])
    assert [wait(a) for a in range(4)] == [0.5, 0.75, 0.0, 0.0]  # head is agent 2, still at step 0


def test_a_policy_that_says_nothing_waits_its_step_gap():
    class Custom(LockstepScheduler):
        name = "custom"

        def wait_steps(self, agent: int) -> float:
            return Scheduler.wait_steps(self, agent)  # the base class's default: the step gap

    table = AgentTable(world(), [(0, 0), (10, 10)], 3)
    d = Dispatcher(table, Custom(world(), table))
    u0, _ = d.pop_ready(), d.pop_ready()
    d.complete(u0, [(0, 0)])
    assert [d.policy.wait_steps(0), d.policy.wait_steps(1)] == [1.0, 0.0]


def test_plans_count_down_and_expire():
    table = AgentTable(world(), [(0, 0), (5, 5)], 20)
    plans = PlanBook(table)
    table.step[0] = 3
    plans.publish(0, Plan.walking(step=3, tiles=5).next_call)
    assert plans.distance(0) == 5.0
    table.step[0] = 8
    assert plans.distance(0) == 0.0
    table.step[0] = 9
    assert plans.distance(0) == math.inf  # the plan is over
    assert plans.distance(1) == math.inf  # never published
    assert Plan.asleep(step=10, until=360) == Plan(10, 360)
    assert Plan.walking(0, tiles=5, velocity=2.0).next_call == 3
    with pytest.raises(ValueError, match="earlier next call"):
        Plan(5, 4)


def test_spatial_distance_is_the_earliest_meeting():
    d = Dispatcher.of("serial", world(), [(0, 0), (10, 0), (19, 19)], until=1)
    est = SpatialBound(world(), d.table)
    assert est.distance(0) == 3.0  # ceil((10 - 4) / 2)
    assert est.distance(2) == math.ceil((math.hypot(9, 19) - 4) / 2) == 9.0
    run_one(d)  # agent 0 is done: it no longer counts as a partner
    assert est.distance(1) == 9.0
    assert est.distance(0) == math.inf
    alone = Dispatcher.of("serial", world(), [(3, 3)], until=1)
    assert SpatialBound(world(), alone.table).distance(0) == math.inf


def test_a_capped_spatial_distance_is_the_minimum_with_the_cap():
    """distance(agent, cap) looks only as far as the cap can matter, and answers min(bound, cap) exactly."""
    d = Dispatcher.of("serial", world(), [(0, 0), (10, 0), (19, 19), (40, 40)], until=1)
    est = SpatialBound(world(), d.table)
    for agent in range(4):
        full = est.distance(agent)
        for cap in (0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 10.0, 25.0, math.inf):
            assert est.distance(agent, cap) == min(full, cap), (agent, cap)
    assert est.nearest(0, within=9.0) == math.inf and est.nearest(0, within=10.0) == 10.0


@pytest.mark.parametrize("seed", range(5))
def test_the_per_commit_nearest_table_answers_as_the_brute_force_bound(seed: int) -> None:
    """Euclidean metrics find every agent's nearest neighbour at once (k-d tree); the bound it gives equals
    ceil((d - R) / 2V) from a brute-force nearest, capped, and it follows commits (a done agent drops out)."""
    rng = random.Random(seed)
    spots = [(rng.randrange(20), rng.randrange(20)) for _ in range(12)]
    d = Dispatcher.of("serial", world(), spots, until=1)
    est = SpatialBound(world(), d.table)
    table = d.table

    def brute(agent: int, cap: float) -> float:
        live = [b for b in range(len(spots)) if b != agent and table.status[b] is not Status.DONE]
        near = min((math.dist(table.pos[agent], table.pos[b]) for b in live), default=math.inf)
        return min(cap, max(0, math.ceil((near - 4.0) / 2.0))) if near != math.inf else cap

    for _ in range(3):
        for agent in range(len(spots)):
            if table.status[agent] is not Status.DONE:
                for cap in (0.0, 2.0, 5.0, math.inf):
                    assert est.distance(agent, cap) == brute(agent, cap), (agent, cap)
        run_one(d)


def test_towns_never_see_each_other_in_the_nearest_table() -> None:
    metric = TownsMetric(width=10, height=10)
    points = [(1, 1), (4, 5), (12, 1), (35, 35)]  # two in town (0, 0), one alone in (1, 0), one alone in (3, 3)
    near = metric.nearest_all(points)
    assert near[:2] == [5.0, 5.0] and min(near[2:]) > 1e5  # other towns lie further than any query looks
    assert nearest_others([(0, 0)]) == [math.inf]


def walkers(scheduler: str = "metropolis") -> Simulation:
    w = World(tilemap=TileMap.open(40, 40), perception_radius=4.0, max_velocity=1.0)
    agents = [RandomWalker(f"w{i}", (i * 12, 0)) for i in range(3)]
    return Simulation(w, agents, until=50, scheduler=scheduler)


def test_published_plans_add_to_the_policy_wait() -> None:
    s = walkers()
    live = track_invocation_distance(s)
    assert [live.distance(a) for a in range(3)] == [0.0, 0.0, 0.0]  # no plan: may call next step
    s.publish_plan(1, Plan(0, 30))
    s.publish_plan(2, Plan(0, 7))
    assert [live.distance(a) for a in range(3)] == [0.0, 30.0, 7.0]


def test_the_distance_counts_down_as_the_agent_steps_and_a_past_plan_expires() -> None:
    s = walkers("lockstep")
    live = track_invocation_distance(s)
    s.publish_plan(0, Plan(0, 2))
    for _ in range(3):  # one lockstep step of all three agents
        unit = s.pop_ready()
        assert unit is not None
        s.dispatcher.complete(unit, [s.table.pos[a] for a in unit.members])
    assert live.distance(0) == 1.0
    for _ in range(6):
        unit = s.pop_ready()
        assert unit is not None
        s.dispatcher.complete(unit, [s.table.pos[a] for a in unit.members])
    assert live.distance(0) == 0.0  # at step 3 the plan (next call at 2) is over
