"""More agents than Smallville has: copies of the town laid out on a grid of the 140 x 100 map.

Two modes:
- `copies` (the paper's): each town is its own world. The towns sit side by side on one big tile map only so
  that one engine runs them; the `TownsMetric` puts every pair of agents of different towns infinitely far
  apart, so no town ever waits for, observes or talks to another.
- `large` (one large town where agents really meet): the same grid, but each town is joined to its four
  neighbours by straight corridors carved through the town walls, distance is plain Euclidean, and residents
  take lunch and leisure in a neighbouring town now and then, walking there through a corridor. Population
  density stays Smallville's (25 residents per 140 x 100 block), so crowds form where Smallville's form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metropolis.compiled import picklable
from metropolis.registry import check_name
from metropolis.world.metrics import EuclideanMetric, Metric, nearest_others
from metropolis.world.paths import shortest_path
from metropolis.world.smallville import Town
from metropolis.world.spatial import GridIndex, Pos, SpatialIndex
from metropolis.world.tilemap import TileMap
from metropolis.world.walking import WalkingMetric
from metropolis.world.world import World

MODES = ("copies", "large")


METRICS = ("euclidean", "walking")
TOWN_GAP = 1e6  # tiles between towns lifted into a third dimension: further than any neighbour query looks


class TownsMetric:
    """Euclidean (or walking, on the base town's map) inside a town, infinite between towns (`copies` mode):
    towns never interact. Walking distances of all copies share one cache, since every copy is the same map."""

    name = "towns"

    def __init__(self, width: int, height: int, cell: int = 16, walking: WalkingMetric | None = None) -> None:
        self.width, self.height, self.cell = width, height, cell
        self.walking = walking
        if walking is None:
            # Two agents this index put together are in one town, and stay there (a move across towns covers an
            # infinite distance: `World.check_move` refuses it): between them the distance is plain `math.dist`,
            # without this method's Python frame (`metrics.near_distance`).
            self.near_distance = math.dist

    def distance(self, a: Pos, b: Pos) -> float:
        w, h = self.width, self.height
        if a[0] // w != b[0] // w or a[1] // h != b[1] // h:
            return math.inf
        if self.walking is not None:
            return self.walking.distance((a[0] % w, a[1] % h), (b[0] % w, b[1] % h))
        return math.dist(a, b)  # hypot of the differences, without building them in Python

    def make_index(self) -> TownsIndex:
        return TownsIndex(self.width, self.height, self.cell)

    def nearest_all(self, points: Sequence[Pos]) -> list[float] | None:
        """Nearest other agent in the same town, for every agent at once (None under walking distance). A third
        coordinate per town puts other towns further away than any query looks (`SpatialEstimator`)."""
        if self.walking is not None:
            return None
        towns: dict[tuple[int, int], int] = {}
        lifted = [
            (x, y, TOWN_GAP * towns.setdefault((x // self.width, y // self.height), len(towns))) for x, y in points
        ]
        return nearest_others(lifted)


class TownsIndex(SpatialIndex):
    """One grid per town: a query only ever looks inside its own town, since the others are infinitely far."""

    __slots__ = ("_grids", "cell", "height", "width")

    def __init__(self, width: int, height: int, cell: int) -> None:
        self.width, self.height, self.cell = width, height, cell
        self._grids: dict[tuple[int, int], GridIndex] = {}

    def _grid(self, pos: Pos) -> GridIndex:
        town = (pos[0] // self.width, pos[1] // self.height)
        grid = self._grids.get(town)
        if grid is None:
            grid = self._grids[town] = GridIndex(self.cell)
        return grid

    def add(self, key: int, pos: Pos) -> None:
        self._grid(pos).add(key, pos)

    def remove(self, key: int, pos: Pos) -> None:
        self._grid(pos).remove(key, pos)

    def move(self, key: int, old: Pos, new: Pos) -> None:
        a, b = self._grid(old), self._grid(new)
        if a is b:
            a.move(key, old, new)
        else:
            a.remove(key, old)
            b.add(key, new)

    def near(self, pos: Pos, radius: float) -> Sequence[int]:
        return self._grid(pos).near(pos, radius)

    def __len__(self) -> int:
        return sum(len(g) for g in self._grids.values())


@dataclass(frozen=True, slots=True)
class Gates:
    """Where the corridors leave a town (base-map tiles inside the town): east/west on row `row`, south/north
    on column `col`."""

    row: int
    col: int
    east: Pos
    west: Pos
    south: Pos
    north: Pos


@dataclass(slots=True)
class Layout:
    """`towns` copies of the base town on a `cols` x `rows` grid; town t sits at column t % cols, row t // cols."""

    base: Town
    towns: int
    mode: str = "copies"
    cols: int = field(init=False)
    rows: int = field(init=False)
    gates: Gates | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        check_name(self.mode, MODES, "scaling mode")
        if self.towns < 1:
            raise ValueError(f"towns must be >= 1, got {self.towns}")
        self.cols = math.ceil(math.sqrt(self.towns))
        self.rows = math.ceil(self.towns / self.cols)
        if self.mode == "large":
            self.gates = find_gates(self.base)

    @property
    def width(self) -> int:
        return self.base.tilemap.width

    @property
    def height(self) -> int:
        return self.base.tilemap.height

    def offset(self, town: int) -> Pos:
        return (town % self.cols) * self.width, (town // self.cols) * self.height

    def to_global(self, pos: Pos, town: int) -> Pos:
        ox, oy = self.offset(town)
        return pos[0] + ox, pos[1] + oy

    def neighbours(self, town: int) -> list[int]:
        """Towns joined to `town` by a corridor (`large` mode; none for `copies`)."""
        if self.mode != "large":
            return []
        c, r = town % self.cols, town // self.cols
        out = []
        for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nc, nr = c + dc, r + dr
            t = nr * self.cols + nc
            if 0 <= nc < self.cols and 0 <= nr < self.rows and t < self.towns:
                out.append(t)
        return out

    def world(self, perception_radius: float, max_velocity: float = 1.0, metric: str = "euclidean") -> World:
        """The world the agents live in; `metric` "walking" counts steps around walls instead of straight lines."""
        check_name(metric, METRICS, "metric for a generated town")
        base = self.base.tilemap
        walkable = np.zeros((self.rows * self.height, self.cols * self.width), dtype=bool)
        for t in range(self.towns):
            ox, oy = self.offset(t)
            walkable[oy : oy + self.height, ox : ox + self.width] = base.walkable
        if self.mode == "large":
            for t in range(self.towns):
                for other in self.neighbours(t):
                    if other > t:
                        for x, y in self.corridor(t, other):
                            walkable[y, x] = True
        tilemap = TileMap(walkable.shape[1], walkable.shape[0], walkable, name=f"smallville-{self.mode}-{self.towns}")
        walking = metric == "walking"
        distance: Metric
        if self.mode == "copies":
            distance = TownsMetric(self.width, self.height, walking=WalkingMetric(base) if walking else None)
        else:
            distance = WalkingMetric(tilemap) if walking else EuclideanMetric()
        return World(
            metric=distance,
            perception_radius=perception_radius,
            max_velocity=max_velocity,
            tilemap=tilemap,
            seconds_per_step=self.base.world.seconds_per_step,
            name=tilemap.name,
        )

    # -- walking ----------------------------------------------------------------------------------------------

    def corridor(self, a: int, b: int) -> list[Pos]:
        """The carved tiles from town a's gate to town b's gate (both gates excluded), walking order."""
        g = self.gates
        if g is None or b not in self.neighbours(a):
            raise ValueError(f"towns {a} and {b} are not joined by a corridor")
        (ax, ay), (bx, by) = self.offset(a), self.offset(b)
        if ay == by:
            x0, x1 = (ax + g.east[0], bx + g.west[0]) if bx > ax else (ax + g.west[0], bx + g.east[0])
            step = 1 if x1 > x0 else -1
            return [(x, ay + g.row) for x in range(x0 + step, x1, step)]
        y0, y1 = (ay + g.south[1], by + g.north[1]) if by > ay else (ay + g.north[1], by + g.south[1])
        step = 1 if y1 > y0 else -1
        return [(ax + g.col, y) for y in range(y0 + step, y1, step)]

    def path(self, start: Pos, town: int, goal: Pos, goal_town: int) -> list[Pos]:
        """Global tiles walked from base tile `start` of `town` to base tile `goal` of `goal_town`, start
        excluded; across towns through their corridor (neighbouring towns only)."""
        tm = self.base.tilemap
        if town == goal_town:
            return [self.to_global(p, town) for p in shortest_path(tm, start, goal)[1:]]
        g = self.gates
        if g is None or goal_town not in self.neighbours(town):
            raise ValueError(f"no corridor from town {town} to town {goal_town}")
        (ax, ay), (bx, by) = self.offset(town), self.offset(goal_town)
        if ay == by:
            out_gate, in_gate = (g.east, g.west) if bx > ax else (g.west, g.east)
        else:
            out_gate, in_gate = (g.south, g.north) if by > ay else (g.north, g.south)
        there = [self.to_global(p, town) for p in shortest_path(tm, start, out_gate)[1:]]
        there += self.corridor(town, goal_town)
        there += [self.to_global(p, goal_town) for p in shortest_path(tm, in_gate, goal)]
        return there

    def locate(self, pos: Pos) -> tuple[Pos, int]:
        """Base tile and town of a global tile."""
        c, r = pos[0] // self.width, pos[1] // self.height
        return (pos[0] - c * self.width, pos[1] - r * self.height), r * self.cols + c


def find_gates(town: Town) -> Gates:
    """The row and the column where a straight corridor leaves the town's walkable region on both sides with
    the fewest carved tiles."""
    tm = town.tilemap
    inside = np.zeros((tm.height, tm.width), dtype=bool)
    for y, x in zip(*np.nonzero(tm.walkable), strict=True):
        inside[y, x] = town.reachable((int(x), int(y)))
    best_row = _best_line(inside)
    best_col = _best_line(inside.T)
    row, col = best_row[0], best_col[0]
    return Gates(
        row=row,
        col=col,
        east=(best_row[2], row),
        west=(best_row[1], row),
        south=(col, best_col[2]),
        north=(col, best_col[1]),
    )


def _best_line(inside: np.ndarray) -> tuple[int, int, int]:
    """(line, first, last) of the line whose first and last inside cells are nearest the grid's two edges."""
    size = inside.shape[1]
    best: tuple[int, int, int, int] | None = None
    for line in range(inside.shape[0]):
        cells = np.flatnonzero(inside[line])
        if len(cells) == 0:
            continue
        first, last = int(cells[0]), int(cells[-1])
        carved = first + (size - 1 - last)
        if best is None or carved < best[0]:
            best = (carved, line, first, last)
    if best is None:
        raise ValueError("the town has no walkable tile to lead a corridor from")
    return best[1], best[2], best[3]


picklable(Gates)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
