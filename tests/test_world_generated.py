"""Generated worlds: open fields, rooms with doors, spawns and the `make_world` convenience."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from metropolis.paths import shared_data_dir
from metropolis.world.generated import make_world, open_map, random_spawns, rooms_map
from metropolis.world.tilemap import TileMap
from metropolis.world.walking import WalkGraph, WalkingMetric


def regions(tm: TileMap) -> int:
    return connected_components(WalkGraph(tm).fields.graph, directed=False)[0]


def test_open_map_walks_in_manhattan_distance() -> None:
    tm = open_map(12, 7)
    assert tm.walkable.all() and (tm.width, tm.height) == (12, 7)
    assert WalkingMetric(tm).distance((0, 0), (11, 6)) == 17.0
    with pytest.raises(ValueError, match="positive size"):
        open_map(0, 3)


def test_rooms_are_walled_joined_by_doors_and_repeat_by_seed() -> None:
    tm = rooms_map(41, 25, seed=4, room=8)
    assert regions(tm) == 1
    assert not tm.walkable[0].any() and not tm.walkable[-1].any()
    assert not tm.walkable[:, 0].any() and not tm.walkable[:, -1].any()
    assert tm.walkable[1:8, 1:8].all()  # the first room's inside
    assert np.array_equal(tm.walkable, rooms_map(41, 25, seed=4, room=8).walkable)
    assert not np.array_equal(tm.walkable, rooms_map(41, 25, seed=5, room=8).walkable)


def test_without_loops_the_doors_form_a_spanning_tree() -> None:
    # 5 x 3 rooms of 7x7 inside: a tree over 15 rooms has 14 doors, each one tile in an inner wall.
    tm = rooms_map(41, 25, seed=9, room=8, loops=0.0)
    walls = np.zeros(tm.walkable.shape, dtype=bool)
    walls[::8, :] = walls[:, ::8] = True
    assert int((tm.walkable & walls).sum()) == 14
    assert regions(tm) == 1
    full = rooms_map(41, 25, seed=9, room=8, loops=1.0)
    assert int((full.walkable & walls).sum()) == 4 * 3 + 5 * 2  # every inner wall between two rooms


def test_rooms_map_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="needs at least 9x9 tiles"):
        rooms_map(8, 20, seed=0)
    with pytest.raises(ValueError, match="room >= 2"):
        rooms_map(20, 20, seed=0, room=1)
    with pytest.raises(ValueError, match="loops is a probability"):
        rooms_map(20, 20, seed=0, loops=2.0)


def test_random_spawns_are_distinct_walkable_connected_and_seeded() -> None:
    walkable = np.ones((6, 10), dtype=bool)
    walkable[:, 4] = False  # a wall: the left region has 24 tiles, the right one 30
    tm = TileMap(10, 6, walkable)
    spawns = random_spawns(tm, 30, seed=1)
    assert len(set(spawns)) == 30 and all(x > 4 for x, _ in spawns)  # all on the larger region
    assert spawns == random_spawns(tm, 30, seed=1)
    assert spawns != random_spawns(tm, 30, seed=2)
    assert len(random_spawns(tm, 54, seed=0, connected=False)) == 54
    with pytest.raises(ValueError, match="cannot place 31 agents on distinct tiles: the largest walkable region"):
        random_spawns(tm, 31, seed=1)


def test_make_world_builds_each_kind() -> None:
    rooms = make_world("rooms", width=30, height=30, seed=2, metric="walking", perception_radius=5.0)
    assert rooms.metric.name == "walking" and rooms.R == 5.0 and rooms.tilemap is not None
    assert make_world("open", width=10, height=10).metric.name == "euclidean"
    graph = make_world("graph", n_nodes=50, seed=1, graph_kind="scale_free")
    assert graph.metric.name == "hops" and graph.tilemap is None and graph.graph is not None
    assert graph.graph.number_of_nodes() == 50 and graph.moves((0, 0))
    with pytest.raises(ValueError, match="unknown world kind 'cave'; choose one of: open, rooms, smallville, graph"):
        make_world("cave")


@pytest.mark.skipif(shared_data_dir(required=False) is None, reason="shared/data (Smallville) is missing")
def test_make_world_loads_smallville() -> None:
    world = make_world("smallville", metric="walking")
    assert world.tilemap is not None and (world.tilemap.width, world.tilemap.height) == (140, 100)
    assert world.metric.name == "walking"
