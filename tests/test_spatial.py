"""The uniform grid index: buckets follow moves, and `near` returns a superset of the Euclidean ball."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metropolis.world import EuclideanMetric, GridIndex
from metropolis.world.metrics import TileDistance, near_distance
from metropolis.world.spatial import Pos


def test_near_finds_the_buckets_around_a_point() -> None:
    index = GridIndex(cell=4, whole=0)
    index.add(1, (0, 0))
    index.add(2, (5, 1))
    index.add(3, (20, 20))
    assert sorted(index.near((1, 1), 1)) == [1]
    assert sorted(index.near((3, 1), 2)) == [1, 2]
    assert sorted(index.near((0, 0), math.inf)) == [1, 2, 3]
    assert sorted(index.near((10, 10), 100)) == [1, 2, 3]  # the scan of occupied cells
    assert len(index) == 3


def test_a_huge_query_over_few_keys_returns_them_all_in_scan_order() -> None:
    index = GridIndex(cell=4, whole=3)
    for key, pos in [(3, (20, 20)), (1, (0, 0)), (2, (5, 1))]:
        index.add(key, pos)
    assert list(index.near((3, 1), 2)) == [3, 1, 2]  # a superset: the caller checks distances anyway
    index.add(4, (40, 40))  # more keys than `whole`: the occupied cells are filtered again
    assert sorted(index.near((3, 1), 2)) == [1, 2]


def test_moves_change_buckets_and_removal_empties_them() -> None:
    index = GridIndex(cell=4, whole=0)
    index.add(1, (0, 0))
    index.move(1, (0, 0), (1, 1))  # same cell
    index.move(1, (1, 1), (9, 9))
    assert list(index.near((0, 0), 1)) == []
    assert list(index.near((9, 9), 0)) == [1]
    index.remove(1, (9, 9))
    assert len(index) == 0 and list(index.near((9, 9), 50)) == []


def test_cell_must_be_positive() -> None:
    with pytest.raises(ValueError, match="grid cell size must be >= 1, got 0"):
        GridIndex(0)


coords = st.tuples(st.integers(-30, 60), st.integers(-30, 60))


@settings(max_examples=300, deadline=None)
@given(st.lists(coords, min_size=1, max_size=40), coords, st.floats(0, 40), st.integers(1, 16))
def test_near_is_a_superset_of_the_euclidean_ball(spots: list[Pos], center: Pos, radius: float, cell: int) -> None:
    metric = EuclideanMetric(cell)
    index = metric.make_index()
    for key, p in enumerate(spots):
        index.add(key, p)
    within = {k for k, p in enumerate(spots) if metric.distance(center, p) <= radius}
    assert within <= set(index.near(center, radius))


def test_tile_distance_is_math_dist_on_tiles() -> None:
    """The scheduler's and the neighbour query's distance between tiles (`TileDistance`) must be `math.dist` to the
    last bit, or a pair at the edge of a radius would block (or be seen) in one build and not in the other: every
    offset up to 512 tiles, then a sample up to a million."""
    tile = TileDistance()
    for dx in range(513):
        for dy in range(dx + 1):
            assert tile.between((dx, dy), (0, 0)) == math.dist((dx, dy), (0, 0))
    rng = random.Random(0)
    for _ in range(20000):
        a = (rng.randrange(-(10**6), 10**6), rng.randrange(-(10**6), 10**6))
        b = (rng.randrange(-(10**6), 10**6), rng.randrange(-(10**6), 10**6))
        assert tile.between(a, b) == math.dist(a, b)
    assert isinstance(near_distance(EuclideanMetric()), TileDistance)


def test_a_metric_whose_index_is_not_a_spatial_index_is_refused_in_one_line() -> None:
    """An index is a `SpatialIndex` subclass (compiled code calls it natively): a metric of one's own that makes a
    duck-typed one is refused when the run's table is built, with what to do, compiled or not."""
    from metropolis.scheduling import AgentTable
    from metropolis.world import World

    class DuckIndex:
        def add(self, key: int, pos: Pos) -> None: ...

    class DuckMetric:
        name = "duck"

        def distance(self, a: Pos, b: Pos) -> float:
            return math.dist(a, b)

        def make_index(self) -> GridIndex:
            return DuckIndex()

    with pytest.raises(TypeError, match="metric 'duck' made a DuckIndex index, which does not subclass"):
        AgentTable(World(metric=DuckMetric()), [(0, 0)], until=1)
