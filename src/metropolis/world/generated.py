"""Seeded generated worlds for tests and benchmarks: open fields, walled rooms with doors, social graphs.

Every generator takes its seed explicitly, so a benchmark names its world by (kind, size, seed) and two runs
build the same one.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from metropolis.registry import check_name
from metropolis.world.metrics import make_metric
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap
from metropolis.world.walking import WalkGraph
from metropolis.world.world import World

WORLD_KINDS = ("open", "rooms", "smallville", "graph")


def open_map(width: int, height: int) -> TileMap:
    """A field with no walls: walking distance there is Manhattan distance."""
    if width < 1 or height < 1:
        raise ValueError(f"a map needs a positive size, got {width}x{height}")
    return TileMap.open(width, height, name=f"open-{width}x{height}")


def rooms_map(width: int, height: int, seed: int, *, room: int = 8, loops: float = 0.25) -> TileMap:
    """Square rooms (`room - 1` tiles inside) walled on every side, joined by one-tile doors.

    The doors of a random spanning tree of the rooms connect every walkable tile; each other wall between two
    rooms gets a door with probability `loops`, so there is more than one way around.
    """
    if room < 2:
        raise ValueError(f"rooms need room >= 2 (walls every `room` tiles), got {room}")
    if width < room + 1 or height < room + 1:
        raise ValueError(f"a rooms map of room size {room} needs at least {room + 1}x{room + 1} tiles")
    if not 0.0 <= loops <= 1.0:
        raise ValueError(f"loops is a probability within [0, 1], got {loops}")
    rng = random.Random(seed)
    walkable = np.ones((height, width), dtype=bool)
    walkable[::room, :] = False
    walkable[:, ::room] = False
    walkable[-1, :] = walkable[:, -1] = False
    walkable[:, 0] = walkable[0, :] = False
    cols = len(_spans(width, room))
    rows = len(_spans(height, room))
    for (a, b), in_tree in _room_links(cols, rows, rng).items():
        if in_tree or rng.random() < loops:
            x, y = _door(a, b, width, height, room, rng)
            walkable[y, x] = True
    return TileMap(width, height, walkable, name=f"rooms-{width}x{height}-r{room}-s{seed}")


def _spans(size: int, room: int) -> list[tuple[int, int]]:
    """The inside (first, last) coordinates of the rooms along one axis."""
    out = []
    for start in range(1, size - 1, room):
        last = min(start + room - 2, size - 2)
        if start <= last:
            out.append((start, last))
    return out


def _room_links(cols: int, rows: int, rng: random.Random) -> dict[tuple[Pos, Pos], bool]:
    """Every pair of adjacent rooms, True for the links of a random spanning tree (randomised Kruskal)."""
    links = [((i, j), (i + 1, j)) for i in range(cols - 1) for j in range(rows)]
    links += [((i, j), (i, j + 1)) for i in range(cols) for j in range(rows - 1)]
    rng.shuffle(links)
    parent = {(i, j): (i, j) for i in range(cols) for j in range(rows)}

    def root(r: Pos) -> Pos:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    out = {}
    for a, b in links:
        ra, rb = root(a), root(b)
        out[(a, b)] = ra != rb
        parent[ra] = rb
    return out


def _door(a: Pos, b: Pos, width: int, height: int, room: int, rng: random.Random) -> Pos:
    """A tile of the wall between adjacent rooms `a` and `b` (b is right of or below a)."""
    if b[0] != a[0]:
        y0, y1 = _spans(height, room)[a[1]]
        return (b[0] * room, rng.randint(y0, y1))
    x0, x1 = _spans(width, room)[a[0]]
    return (rng.randint(x0, x1), b[1] * room)


def random_spawns(tilemap: TileMap, n: int, seed: int, *, connected: bool = True, near: Pos | None = None) -> list[Pos]:
    """`n` distinct walkable tiles, all on one walkable region so that agents can meet: the region of `near`
    when given (Smallville: a resident's start tile; its largest region is the margin outside the town), else
    the largest one; anywhere walkable when `connected` is False."""
    tiles = tilemap.walkable_tiles()
    region = "the map"
    if (connected or near is not None) and tiles:
        graph = WalkGraph.of(tilemap)
        labels = graph.fields.component
        if near is not None:
            want = graph.region_of(near)
            if want is None:
                raise ValueError(f"spawn region: tile {near} is not walkable on {tilemap.name}")
            region = f"the walkable region of {near}"
        else:
            want = int(np.bincount(labels).argmax())
            region = "the largest walkable region"
        tiles = [t for t, label in zip(graph.tiles, labels, strict=True) if label == want]
    if not 0 <= n <= len(tiles):
        raise ValueError(f"cannot place {n} agents on distinct tiles: {region} of {tilemap.name} has {len(tiles)}")
    return random.Random(seed).sample(tiles, n)


def make_world(
    kind: str,
    *,
    width: int = 64,
    height: int = 64,
    seed: int = 0,
    metric: str | None = None,
    perception_radius: float = 4.0,
    max_velocity: float = 1.0,
    room: int = 8,
    n_nodes: int = 100,
    graph_kind: str = "small_world",
    root: Path | None = None,
) -> World:
    """A world by kind (open, rooms, smallville, graph); metric defaults to hops on graphs, else euclidean."""
    check_name(kind, WORLD_KINDS, "world kind")
    if kind == "smallville":
        from metropolis.world.smallville import load_smallville

        town = load_smallville(
            root, metric=metric or "euclidean", perception_radius=perception_radius, max_velocity=max_velocity
        )
        return town.world
    if kind == "graph":
        from metropolis.world.graph import social_graph

        g = social_graph(n_nodes, seed, graph_kind)
        return World(
            metric=make_metric(metric or "hops", graph=g),
            perception_radius=perception_radius,
            max_velocity=max_velocity,
            graph=g,
            name=f"graph-{graph_kind}-{n_nodes}-s{seed}",
        )
    tilemap = open_map(width, height) if kind == "open" else rooms_map(width, height, seed, room=room)
    return World(
        metric=make_metric(metric or "euclidean", tilemap=tilemap),
        perception_radius=perception_radius,
        max_velocity=max_velocity,
        tilemap=tilemap,
        name=tilemap.name,
    )
