"""Spatial placement of agents on Ray workers: equal-count strips along the longer side; a unit goes to the
worker owning most of its members, or, when that one is out, to the live worker with fewest units."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from metropolis.runtime.ray.placement import Placement, spatial_owners


def test_strips_follow_the_longer_side_with_equal_counts() -> None:
    wide = [(x, y) for x in range(8) for y in range(2)]  # 8 wide, 2 high: split along x
    owners = spatial_owners(wide, 2)
    assert [owners[i] for i, p in enumerate(wide) if p[0] < 4] == [0] * 8
    assert [owners[i] for i, p in enumerate(wide) if p[0] >= 4] == [1] * 8
    tall = [(y, x) for x, y in wide]  # 2 wide, 8 high: split along y
    assert spatial_owners(tall, 2) == owners
    assert sorted(spatial_owners([(0, 0)] * 7, 3)) == [0, 0, 0, 1, 1, 2, 2]


def test_a_unit_goes_to_the_owner_of_most_of_its_members() -> None:
    placement = Placement([0, 1, 1, 0], 2)
    assert placement.pick([0]) == 0 and placement.pick([1]) == 1
    assert placement.pick([0, 1, 2]) == 1
    assert placement.pick([0, 1]) == 0  # a tie: the lower worker


def test_an_out_worker_gets_no_units() -> None:
    placement = Placement([0, 0, 1], 3)
    placement.live[0] = False
    placement.running[1] = 4
    assert placement.pick([0, 1]) == 2  # worker 0 is out: the live worker with fewest units
    assert placement.pick([0, 2]) == 1
    placement.live = [False, False, False]
    with pytest.raises(RuntimeError, match="every Ray worker is out"):
        placement.pick([0])
