"""Walking distance and paths: exact BFS on hand-made maps with walls, metric properties, cache bounds."""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metropolis.world import TileMap, World, make_metric, metric_names
from metropolis.world.generated import rooms_map
from metropolis.world.paths import shortest_path, step_toward
from metropolis.world.spatial import Pos
from metropolis.world.walking import WalkGraph, WalkingMetric

# A wall with one gap at the bottom, and a pocket (bottom right) that no walk reaches.
MAZE = """
..#....
..#.##.
..#.#..
.....#.
####.##
...#.#.
"""


def ascii_map(text: str) -> TileMap:
    rows = [r for r in text.strip().splitlines()]
    walkable = np.array([[c == "." for c in r] for r in rows], dtype=bool)
    return TileMap(len(rows[0]), len(rows), walkable)


def reference_bfs(tm: TileMap, a: Pos) -> dict[Pos, int]:
    """Plain BFS over 4-neighbours: the definition the metric must match."""
    dist = {a: 0}
    todo = deque([a])
    while todo:
        p = todo.popleft()
        for q in tm.walkable_neighbors(p):
            if q not in dist:
                dist[q] = dist[p] + 1
                todo.append(q)
    return dist


def test_walls_make_walking_longer_than_euclidean() -> None:
    tm = ascii_map(MAZE)
    m = WalkingMetric(tm)
    assert m.distance((1, 0), (3, 0)) == 8.0  # around the wall, through the gap at (2, 3); Euclidean: 2
    assert m.graph.fields.misses == 0  # a near pair: settled by a bounded BFS, no whole-map field
    assert m.distance((3, 0), (1, 0)) == 8.0
    assert m.distance((0, 0), (0, 0)) == 0.0
    assert m.distance((0, 5), (6, 5)) == math.inf  # the sealed pocket
    assert m.distance((2, 0), (3, 0)) == math.inf  # a wall tile is nowhere
    assert m.distance((0, 0), (99, 99)) == math.inf


def test_walking_equals_reference_bfs_on_every_pair() -> None:
    tm = ascii_map(MAZE)
    m = WalkingMetric(tm)
    for a in tm.walkable_tiles():
        ref = reference_bfs(tm, a)
        for b in tm.walkable_tiles():
            assert m.distance(a, b) == ref.get(b, math.inf), (a, b)


def test_distance_within_settles_far_pairs_without_a_search() -> None:
    tm = ascii_map(MAZE)
    m = WalkingMetric(tm)
    fields = m.graph.fields
    assert not m.distance_within((1, 0), (3, 0), 7)  # Manhattan 2, but 8 on foot
    assert m.distance_within((1, 0), (3, 0), 8)
    assert m.distance_within((0, 0), (0, 0), 0)
    assert not m.distance_within((0, 5), (6, 5), 100)  # different regions: no walk at all
    assert not m.distance_within((0, 0), (6, 0), 5)  # Manhattan 6 > 5: the lower bound decides
    assert fields.misses == 0  # no distance field was computed for any of these
    assert m.graph.distance_within((1, 0), (3, 0), 12.5) == 8.0


def test_fields_are_cached_per_source_in_a_bounded_lru() -> None:
    tm = TileMap.open(10, 10)
    graph = WalkGraph(tm, max_bytes=3 * 4 * 100)  # room for three fields of 100 float32
    fields = graph.fields
    assert fields.capacity == 3
    for x in range(5):
        assert graph.distance((x, 0), (9, 9)) == (9 - x) + 9
    assert fields.misses == 5 and len(fields._fields) == 3
    graph.distance((9, 9), (4, 0))  # the field of (4, 0) is still there and answers the reverse pair
    assert fields.misses == 5 and fields.hits == 1


def test_one_step_moves_exactly_one_and_the_index_is_a_grid() -> None:
    tm = rooms_map(30, 20, seed=1)
    world = World(metric=WalkingMetric(tm), tilemap=tm)
    for a in tm.walkable_tiles()[::7]:
        for b in world.moves(a):
            assert world.metric.distance(a, b) == 1.0
            assert world.check_move(a, b) is None
    assert type(world.metric.make_index()).__name__ == "GridIndex"


ROOMS = rooms_map(33, 25, seed=5, room=6)
ROOM_TILES = ROOMS.walkable_tiles()
ROOM_METRIC = WalkingMetric(ROOMS)
tiles = st.sampled_from(ROOM_TILES)


@settings(max_examples=200, deadline=None)
@given(tiles, tiles, tiles)
def test_triangle_inequality_and_lower_bounds(a: Pos, b: Pos, c: Pos) -> None:
    d = ROOM_METRIC.distance
    assert d(a, c) <= d(a, b) + d(b, c)
    assert d(a, b) == d(b, a)
    assert d(a, b) >= abs(a[0] - b[0]) + abs(a[1] - b[1]) >= math.hypot(a[0] - b[0], a[1] - b[1])


@settings(max_examples=60, deadline=None)
@given(tiles, tiles)
def test_distance_matches_reference_bfs_and_path_on_rooms(a: Pos, b: Pos) -> None:
    d = ROOM_METRIC.distance(a, b)
    assert d == reference_bfs(ROOMS, a)[b]  # rooms maps are connected
    path = shortest_path(ROOMS, a, b)
    assert path[0] == a and path[-1] == b and len(path) == d + 1
    for p, q in itertools.pairwise(path):
        assert abs(p[0] - q[0]) + abs(p[1] - q[1]) == 1 and ROOMS.is_walkable(q)
    assert ROOM_METRIC.distance_within(a, b, d) and not ROOM_METRIC.distance_within(a, b, d - 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(tiles, min_size=1, max_size=30), tiles, st.floats(0, 30))
def test_grid_index_is_a_superset_under_walking(spots: list[Pos], center: Pos, radius: float) -> None:
    index = ROOM_METRIC.make_index()
    for key, p in enumerate(spots):
        index.add(key, p)
    within = {k for k, p in enumerate(spots) if ROOM_METRIC.distance(center, p) <= radius}
    assert within <= set(index.near(center, radius))


def test_paths_end_to_end_and_when_unreachable() -> None:
    tm = ascii_map(MAZE)
    down_through_the_gap_and_up = [(1, 0), (1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1), (3, 0)]
    assert shortest_path(tm, (1, 0), (3, 0)) == down_through_the_gap_and_up
    assert shortest_path(tm, (0, 0), (0, 0)) == [(0, 0)]
    assert shortest_path(tm, (0, 5), (6, 5)) == []
    assert step_toward(tm, (0, 5), (6, 5)) is None
    assert step_toward(tm, (4, 3), (4, 3)) == (4, 3)
    assert step_toward(tm, (3, 3), (4, 5)) == (4, 3)
    with pytest.raises(ValueError, match=r"tile \(2, 0\) is not a walkable tile of the 7x6 map"):
        shortest_path(tm, (2, 0), (0, 0))


def test_paths_repeat_and_break_ties_toward_the_lowest_tile() -> None:
    tm = TileMap.open(3, 3)
    # Both (1, 0) and (0, 1) are one step closer to (2, 2); node order is row-major, so (1, 0) comes first.
    assert shortest_path(tm, (0, 0), (2, 2)) == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]


def test_the_metric_registry_builds_walking_from_the_tilemap() -> None:
    tm = TileMap.open(4, 4)
    assert {"euclidean", "hops", "walking"} <= set(metric_names())
    m = make_metric("walking", tilemap=tm)
    assert isinstance(m, WalkingMetric) and m.distance((0, 0), (3, 3)) == 6.0
    assert WalkGraph.of(tm) is m.graph  # one graph per map, shared with the path finder
    with pytest.raises(ValueError, match="walking metric needs the world's tile map"):
        make_metric("walking")
    with pytest.raises(ValueError, match="unknown metric 'crow'; choose one of: euclidean, hops, walking"):
        make_metric("crow")
