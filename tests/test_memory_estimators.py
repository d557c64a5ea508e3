import math
import random

import pytest

from metropolis.llm.types import LLMRequest
from metropolis.memory import (
    BarrierEstimator,
    BlockingEstimator,
    MinEstimator,
    PlanEstimator,
    PlanHint,
    SpatialEstimator,
    StepGapEstimator,
    TableEstimator,
    scheduler_estimator,
    steps_to_seconds,
)
from metropolis.scheduling import Scheduler, make_scheduler
from metropolis.scheduling.base import Status
from metropolis.scheduling.lockstep import LockstepScheduler
from metropolis.workloads.scaling import TownsMetric
from metropolis.world.metrics import nearest_others
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World


def world() -> World:
    return World(tilemap=TileMap.open(20, 20), perception_radius=4.0, max_velocity=1.0)


def run_one(sched: Scheduler) -> list[int]:
    """Dispatch the next unit and commit it in place; its members."""
    unit = sched.pop_ready()
    assert unit is not None
    sched.complete(unit, [sched.pos[a] for a in unit.members])
    return list(unit.members)


def test_metropolis_ready_running_and_blocked():
    sched = make_scheduler("metropolis", world(), [(0, 0), (7, 0), (19, 19)], until=10)
    est = scheduler_estimator(sched)
    assert isinstance(est, BlockingEstimator)
    assert [est.distance(a) for a in range(3)] == [0.0, 0.0, 0.0]  # all ready
    units = [sched.pop_ready() for _ in range(3)]
    assert [u.members for u in units if u] == [(0,), (1,), (2,)]
    sched.complete(units[1], [(7, 0)])  # agent 1 reaches step 1: d = 7 > 2V + R, still free
    sched.complete(sched.pop_ready(), [(7, 0)])  # step 2: d = 7 <= 3V + R, agent 0 (2 steps back) blocks it
    assert sched.blocked_by[1] == {0}
    assert [est.distance(a) for a in range(3)] == [0.0, 2.0, 0.0]  # 0 and 2 are running


def test_metropolis_done_is_infinite():
    sched = make_scheduler("metropolis", world(), [(0, 0)], until=1)
    run_one(sched)
    assert BlockingEstimator(sched).distance(0) == math.inf
    with pytest.raises(TypeError, match="no blocked_by"):
        BlockingEstimator(make_scheduler("serial", world(), [(0, 0)], until=1))


def test_serial_distance_is_the_place_in_the_loop():
    sched = make_scheduler("serial", world(), [(0, 0), (5, 5), (10, 10), (15, 15)], until=3)
    est = scheduler_estimator(sched)
    assert isinstance(est, BarrierEstimator)
    first = sched.pop_ready()  # agent 0 runs
    assert first is not None and first.members == (0,)
    assert [est.distance(a) for a in range(4)] == [0.0, 0.25, 0.5, 0.75]
    sched.complete(first, [(0, 0)])
    sched.pop_ready()  # agent 1 runs; agent 0 waits for step 1, after 2 and 3
    assert [est.distance(a) for a in range(4)] == [0.75, 0.0, 0.25, 0.5]


def test_lockstep_waiters_queue_behind_the_barrier():
    sched = make_scheduler("lockstep", world(), [(0, 0), (5, 5), (10, 10), (15, 15)], until=3)
    est = scheduler_estimator(sched)
    units = [sched.pop_ready() for _ in range(4)]
    assert [est.distance(a) for a in range(4)] == [0.0] * 4
    sched.complete(units[0], [(0, 0)])
    sched.complete(units[1], [(5, 5)])
    assert [est.distance(a) for a in range(4)] == [0.5, 0.75, 0.0, 0.0]  # head is agent 2, still at step 0


def test_unknown_scheduler_gets_the_step_gap():
    class Custom(LockstepScheduler):
        name = "custom"

    sched = Custom(world(), [(0, 0), (10, 10)], until=3)
    est = scheduler_estimator(sched)
    assert isinstance(est, StepGapEstimator)
    u0, _ = sched.pop_ready(), sched.pop_ready()
    sched.complete(u0, [(0, 0)])
    assert [est.distance(0), est.distance(1)] == [1.0, 0.0]


def test_plan_hints_from_requests_and_registry():
    steps = {0: 3, 1: 0}
    plans = PlanEstimator(steps.__getitem__)
    plans.publish(0, PlanHint.walking(step=3, tiles=5))
    assert plans.distance(0) == 5.0
    steps[0] = 8
    assert plans.distance(0) == 0.0
    steps[0] = 9
    assert plans.distance(0) == math.inf  # the plan is over
    plans.observe(LLMRequest("b", 0, "plan", agent_id=1, hints={"plan": {"step": 0, "next_call": 12}}))
    assert plans.distance(1) == 12.0
    plans.observe(LLMRequest("b", 1, "react", agent_id=1))
    assert plans.distance(1) == math.inf
    assert PlanHint.asleep(step=10, until=360) == PlanHint(10, 360)
    assert PlanHint.walking(0, tiles=5, velocity=2.0).next_call == 3


def test_plan_hints_validate():
    with pytest.raises(ValueError, match="earlier next call"):
        PlanHint(5, 4)
    with pytest.raises(ValueError, match="must be a PlanHint or a dict"):
        PlanHint.from_hints({"plan": 3})
    with pytest.raises(ValueError, match="no agent_id"):
        PlanEstimator(lambda a: 0).observe(LLMRequest("a", 0, "plan"))


def test_spatial_distance_is_the_earliest_meeting():
    sched = make_scheduler("serial", world(), [(0, 0), (10, 0), (19, 19)], until=1)
    est = SpatialEstimator(sched)
    assert est.distance(0) == 3.0  # ceil((10 - 4) / 2)
    assert est.distance(2) == math.ceil((math.hypot(9, 19) - 4) / 2) == 9.0
    run_one(sched)  # agent 0 is done: it no longer counts as a partner
    assert est.distance(1) == 9.0
    assert est.distance(0) == math.inf
    alone = make_scheduler("serial", world(), [(3, 3)], until=1)
    assert SpatialEstimator(alone).distance(0) == math.inf


def test_a_capped_spatial_distance_is_the_minimum_with_the_cap():
    """distance(agent, cap) looks only as far as the cap can matter, and answers min(bound, cap) exactly."""
    sched = make_scheduler("serial", world(), [(0, 0), (10, 0), (19, 19), (40, 40)], until=1)
    est = SpatialEstimator(sched)
    for agent in range(4):
        full = est.distance(agent)
        for cap in (0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 10.0, 25.0, math.inf):
            assert est.distance(agent, cap) == min(full, cap), (agent, cap)
    assert est.nearest(0, within=9.0) == math.inf and est.nearest(0, within=10.0) == 10.0


def test_sources_combine_by_minimum():
    est = MinEstimator(TableEstimator({0: 5.0, 1: 2.0}), TableEstimator({0: 3.0}))
    assert [est.distance(0), est.distance(1), est.distance(2)] == [3.0, 2.0, math.inf]
    assert steps_to_seconds(3.0, 10.0) == 30.0
    with pytest.raises(ValueError):
        MinEstimator()


@pytest.mark.parametrize("seed", range(5))
def test_the_per_commit_nearest_table_answers_as_the_brute_force_bound(seed: int) -> None:
    """Euclidean metrics find every agent's nearest neighbour at once (k-d tree); the bound it gives equals
    ceil((d - R) / 2V) from a brute-force nearest, capped, and it follows commits (a done agent drops out)."""
    rng = random.Random(seed)
    spots = [(rng.randrange(20), rng.randrange(20)) for _ in range(12)]
    sched = make_scheduler("serial", world(), spots, until=1)
    est = SpatialEstimator(sched)

    def brute(agent: int, cap: float) -> float:
        live = [b for b in range(len(spots)) if b != agent and sched.status[b] is not Status.DONE]
        d = min((math.dist(sched.pos[agent], sched.pos[b]) for b in live), default=math.inf)
        return min(cap, max(0, math.ceil((d - 4.0) / 2.0))) if d != math.inf else cap

    for _ in range(3):
        for agent in range(len(spots)):
            if sched.status[agent] is not Status.DONE:
                for cap in (0.0, 2.0, 5.0, math.inf):
                    assert est.distance(agent, cap) == brute(agent, cap), (agent, cap)
        run_one(sched)


def test_towns_never_see_each_other_in_the_nearest_table() -> None:
    metric = TownsMetric(width=10, height=10)
    points = [(1, 1), (4, 5), (12, 1), (35, 35)]  # two in town (0, 0), one alone in (1, 0), one alone in (3, 3)
    near = metric.nearest_all(points)
    assert near[:2] == [5.0, 5.0] and min(near[2:]) > 1e5  # other towns lie further than any query looks
    assert nearest_others([(0, 0)]) == [math.inf]
