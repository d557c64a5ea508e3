"""The Smallville workload generator: seeded, legal walks, dependencies that match the positions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metropolis.paths import shared_data_dir
from metropolis.workloads import DayConfig, Workload, generate
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
    with pytest.raises(ValueError, match="not a workload file"):
        Workload.load(tmp_path / "missing.npz")
