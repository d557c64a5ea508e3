"""The Smallville workload generator: seeded, legal walks, dependencies that match the positions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from metropolis.paths import shared_data_dir
from metropolis.trace import Trace
from metropolis.workloads import DayConfig, Workload, generate
from metropolis.workloads import calls as C
from metropolis.workloads.format import PLAN_UNKNOWN
from metropolis.workloads.scaling import Layout, TownsMetric
from metropolis.workloads.tracing import from_trace, to_trace

pytestmark = pytest.mark.skipif(
    shared_data_dir(required=False) is None, reason="needs shared/data/smallville (the real town)"
)


@pytest.fixture(scope="module")
def town():
    from metropolis.world.smallville import load_smallville

    return load_smallville()


@pytest.fixture(scope="module")
def lunch(town):
    return generate(town, DayConfig(agents=25, start_hour=12.0, hours=0.1, seed=3))


def test_same_seed_same_workload_other_seed_other(town, lunch) -> None:
    again, _ = generate(town, DayConfig(agents=25, start_hour=12.0, hours=0.1, seed=3))
    other, _ = generate(town, DayConfig(agents=25, start_hour=12.0, hours=0.1, seed=4))
    for name in Workload.ARRAYS:
        assert np.array_equal(getattr(lunch[0], name), getattr(again, name)), name
    assert not np.array_equal(lunch[0].positions, other.positions)


def test_walks_are_legal_moves_on_walkable_tiles(lunch) -> None:
    workload, layout = lunch
    world = layout.world(workload.perception_radius)
    pos = workload.positions
    steps = np.abs(np.diff(pos, axis=0)).sum(axis=2)
    assert steps.max() <= 1  # 4-connected, at most V = 1 tile per step
    assert steps.sum() > 0
    assert world.tilemap is not None
    assert world.tilemap.walkable[pos[..., 1], pos[..., 0]].all()


def test_observed_sets_are_the_agents_within_r(lunch) -> None:
    workload, _ = lunch
    R = workload.perception_radius
    for s in (0, workload.steps // 2, workload.steps - 1):
        xy = workload.positions[s]
        for i in range(workload.agents):
            want = tuple(j for j in range(workload.agents) if j != i and math.dist(xy[i], xy[j]) <= R)
            assert workload.observed(i, s) == want


def test_conversations_are_symmetric_within_r_and_inside_the_initiators_step(lunch) -> None:
    workload, _ = lunch
    rows = {tuple(r) for r in workload.partner_rows.tolist()}
    assert rows, "the lunch hour at Hobbs Cafe should hold a conversation"
    for s, a, b in rows:
        assert (s, b, a) in rows
        assert math.dist(workload.positions[s, a], workload.positions[s, b]) <= workload.perception_radius
    talk = workload.call_owner != workload.call_speaker
    for s, owner, speaker in zip(
        workload.call_step[talk], workload.call_owner[talk], workload.call_speaker[talk], strict=False
    ):
        assert (int(s), int(owner), int(speaker)) in rows


def test_copies_never_meet_and_the_large_town_is_connected(town) -> None:
    copies, layout = generate(town, DayConfig(agents=50, start_hour=12.0, hours=0.05))
    assert isinstance(layout.world(4.0).metric, TownsMetric)
    towns = np.arange(50) // 25
    for s in range(copies.steps):
        for i in range(50):
            assert all(towns[j] == towns[i] for j in copies.observed(i, s))
    big = Layout(town, 4, "large")
    a, b = town.personas[0].spawn, town.personas[1].spawn
    path = big.path(a, 0, b, 1)
    world = big.world(4.0)
    assert path[-1] == big.to_global(b, 1)
    for p, q in zip([big.to_global(a, 0), *path], path, strict=False):
        assert world.check_move(p, q) is None


def test_save_load_and_trace_round_trips(lunch, tmp_path) -> None:
    workload, _ = lunch
    loaded = Workload.load(workload.save(tmp_path / "w.npz"))
    back = from_trace(to_trace(workload))
    for other in (loaded, back):
        assert np.array_equal(other.positions, workload.positions)
        assert np.array_equal(other.call_owner, workload.call_owner)
        assert np.array_equal(other.call_speaker, workload.call_speaker)
        assert np.array_equal(other.observed_ids, workload.observed_ids)
        assert other.calls_by_agent_step() == workload.calls_by_agent_step()
        assert other.partners_by_agent_step() == workload.partners_by_agent_step()
    # the routes' places (the tiles each area may hold) come back from the file
    assert loaded.places() == workload.places() and len(workload.places()) > 0
    assert loaded.area_place is not None and np.array_equal(loaded.area_place, workload.area_place)
    with pytest.raises(ValueError, match="come together"):
        dataclasses.replace(workload, place_ptr=None)
    with pytest.raises(ValueError, match="not a workload file"):
        Workload.load(tmp_path / "missing.npz")


# -- plans: what each resident's own plan says about its next call ----------------------------------------------

PLANNED = {*C.SUBTASK, *C.WAKE, C.HOURLY, C.DECOMP, *C.AFTER_CHAT} - {C.POIGNANCY}


@pytest.fixture(scope="module")
def morning(town):
    """Waking, sub-tasks, walks and some conversations (the 7 am hour, when most residents get up)."""
    return generate(town, DayConfig(agents=25, start_hour=6.9, hours=0.2, seed=2))[0]


@pytest.fixture(scope="module")
def bedtime(town):
    """Residents going to bed: that calls nothing, so their plans reach past it to waking."""
    return generate(town, DayConfig(agents=25, start_hour=23.0, hours=0.2, seed=2))[0]


def planned_calls(workload: Workload, agent: int) -> np.ndarray:
    own = (workload.call_owner == agent) & (workload.call_speaker == agent)
    return np.unique(workload.call_step[own & np.isin(workload.call_function, list(PLANNED))])


def test_the_plan_is_the_next_planned_call_unless_a_conversation_comes_first(lunch, morning, bedtime) -> None:
    for workload in (lunch[0], morning, bedtime):
        assert workload.plan_next is not None
        talks: dict[int, list[int]] = {}
        for s, a, _ in workload.partner_rows.tolist():
            talks.setdefault(a, []).append(s)
        checked = 0
        for i in range(workload.agents):
            calls = planned_calls(workload, i)
            for s in range(workload.steps):
                plan = workload.plan_at(i, s)
                assert plan is not None and plan > s
                if any(s < t <= plan for t in talks.get(i, ())):
                    continue  # being talked to is not in anyone's plan
                later = calls[calls > s]
                if plan < workload.steps:
                    assert later[0] == plan, (i, s)
                    checked += 1
                else:
                    assert len(later) == 0, (i, s)
        assert checked > 0
    wakes = np.isin(morning.call_function, list(C.WAKE))
    assert wakes.any(), "the window should hold a waking"


def test_the_plan_reads_no_recorded_future(town, morning) -> None:
    """A shorter window records the same plans: they come from the residents' state, not from later calls."""
    short, _ = generate(town, DayConfig(agents=25, start_hour=6.9, hours=0.1, seed=2))
    assert short.plan_next is not None and morning.plan_next is not None
    assert np.array_equal(short.plan_next, morning.plan_next[: short.steps])
    assert (short.plan_next >= short.steps).any()  # plans reaching past the window are kept, not cut


def test_plans_must_fit_the_workload(morning) -> None:
    with pytest.raises(ValueError, match=r"plan_next should have shape \(72, 25\)"):
        dataclasses.replace(morning, plan_next=np.zeros((3, 25), dtype=np.int32))
    bad = morning.plan_next.copy()
    bad[5, 2] = 5
    with pytest.raises(ValueError, match=r"plan_next\[5, 2\] = 5: a plan made at step 5 must name a later step"):
        dataclasses.replace(morning, plan_next=bad)
    unknown = morning.plan_next.copy()
    unknown[5, 2] = PLAN_UNKNOWN
    assert dataclasses.replace(morning, plan_next=unknown).plan_at(2, 5) is None
    assert dataclasses.replace(morning, plan_next=None).plan_at(2, 5) is None


def test_plans_survive_save_load_and_the_trace_and_old_files_load_without(morning, tmp_path) -> None:
    plans = morning.plan_next.copy()
    plans[0, 0] = PLAN_UNKNOWN
    workload = dataclasses.replace(morning, plan_next=plans)
    for other in (Workload.load(workload.save(tmp_path / "w.npz")), from_trace(to_trace(workload))):
        assert other.plan_next is not None and np.array_equal(other.plan_next, plans)
    folder = to_trace(workload).write(tmp_path / "trace")
    assert np.array_equal(from_trace(Trace.read(folder)).plan_next, plans)
    bare = dataclasses.replace(morning, plan_next=None)
    with np.load(bare.save(tmp_path / "old.npz")) as data:
        assert "plan_next" not in data.files  # what files written before plans look like
    assert Workload.load(tmp_path / "old.npz").plan_next is None
    assert from_trace(to_trace(bare)).plan_next is None
