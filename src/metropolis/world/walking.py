"""Walking distance: the number of 4-connected steps between two tiles over walkable ground.

Walls make it tighter than Euclidean distance (two agents on either side of a wall are far apart), so fewer
agents block each other. It is a metric (the triangle inequality holds for shortest paths), one step moves an
agent one tile, and it is never shorter than Manhattan and so never shorter than Euclidean distance: a
`GridIndex` stays a valid superset index, and the Manhattan distance is a free lower bound that settles far
pairs without a search.
"""

from __future__ import annotations

import math

import numpy as np
from mypy_extensions import mypyc_attr
from scipy.sparse import coo_array

from metropolis.world.fields import DEFAULT_MAX_BYTES, DistanceFields
from metropolis.world.metrics import register_metric
from metropolis.world.spatial import GridIndex, Pos, SpatialIndex
from metropolis.world.tilemap import TileMap

_DERIVED_KEY = "walk_graph"
NEAR = 8  # tiles: pairs this close (Manhattan) are settled by a bounded BFS first


@mypyc_attr(allow_interpreted_subclasses=True)  # unpickled without __init__ (Ray): compiled.py
class WalkGraph:
    """The walkable tiles of a map as graph nodes (row-major order) with the distance fields on them."""

    __slots__ = ("_node_of", "fields", "height", "tiles", "width")

    def __init__(self, tilemap: TileMap, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        walkable = np.asarray(tilemap.walkable, dtype=bool)
        h, w = walkable.shape
        self.width, self.height = w, h
        ys, xs = np.nonzero(walkable)
        node = np.full((h, w), -1, dtype=np.int64)
        node[ys, xs] = np.arange(len(ys))
        self.tiles: list[Pos] = [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]
        self._node_of: dict[Pos, int] = {t: i for i, t in enumerate(self.tiles)}
        rows, cols = [], []
        for dy, dx in ((0, 1), (1, 0)):
            both = walkable[: h - dy, : w - dx] & walkable[dy:, dx:]
            by, bx = np.nonzero(both)
            rows.append(node[by, bx])
            cols.append(node[by + dy, bx + dx])
        r, c = np.concatenate(rows), np.concatenate(cols)
        n = len(self.tiles)
        adjacency = coo_array((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
        self.fields = DistanceFields(adjacency, max_bytes=max_bytes)

    @classmethod
    def of(cls, tilemap: TileMap) -> WalkGraph:
        """The map's own walk graph, built on first use and shared by the metric and the path finder."""
        graph = tilemap.derived.get(_DERIVED_KEY)
        if not isinstance(graph, WalkGraph):
            graph = cls(tilemap)
            tilemap.derived[_DERIVED_KEY] = graph
        return graph

    def node(self, pos: Pos) -> int | None:
        """The node of a walkable tile, None for a blocked tile or one off the map."""
        return self._node_of.get(pos)

    def region_of(self, pos: Pos) -> int | None:
        """The label of the walkable region (connected component) holding `pos`; None off walkable ground."""
        node = self.node(pos)
        return None if node is None else self.fields.component[node]

    def require(self, pos: Pos) -> int:
        node = self.node(pos)
        if node is None:
            raise ValueError(f"tile {pos} is not a walkable tile of the {self.width}x{self.height} map")
        return node

    def distance(self, a: Pos, b: Pos) -> float:
        """Exact walking distance. A near pair (Manhattan <= `NEAR`) is first tried with a BFS bounded at
        `2 * NEAR`, which costs a small ball instead of a whole-map field; far pairs use a cached field."""
        if a == b:
            return 0.0
        node_of = self._node_of
        na, nb = node_of.get(a), node_of.get(b)
        if na is None or nb is None:
            return math.inf
        if abs(a[0] - b[0]) + abs(a[1] - b[1]) <= NEAR:
            d = self.fields.within(na, nb, 2 * NEAR)
            if d is not None:
                return d
        return self.fields.distance(na, nb)

    def distance_within(self, a: Pos, b: Pos, limit: float) -> float | None:
        """The walking distance if it is at most `limit`, else None. Far pairs cost one subtraction."""
        if abs(a[0] - b[0]) + abs(a[1] - b[1]) > limit:
            return None
        if a == b:
            return 0.0
        na, nb = self._node_of.get(a), self._node_of.get(b)
        if na is None or nb is None:
            return None
        return self.fields.within(na, nb, limit)


@mypyc_attr(allow_interpreted_subclasses=True)  # unpickled without __init__ (Ray): compiled.py
class WalkingMetric:
    """Shortest walking distance on 4-connected walkable tiles; `inf` between tiles no walk joins."""

    name = "walking"

    def __init__(self, tilemap: TileMap, *, cell: int = 8) -> None:
        self.tilemap = tilemap
        self.graph = WalkGraph.of(tilemap)
        self.cell = cell

    def distance(self, a: Pos, b: Pos) -> float:
        return self.graph.distance(a, b)

    def distance_within(self, a: Pos, b: Pos, limit: float) -> bool:
        """Whether the walking distance is at most `limit`; a far pair needs no search at all."""
        return self.graph.distance_within(a, b, limit) is not None

    def make_index(self) -> SpatialIndex:
        return GridIndex(self.cell)


def _walking(*, tilemap: TileMap | None = None, cell: int = 8, **_context: object) -> WalkingMetric:
    if tilemap is None:
        raise ValueError("the walking metric needs the world's tile map: make_metric('walking', tilemap=...)")
    return WalkingMetric(tilemap, cell=cell)


register_metric("walking", _walking)
