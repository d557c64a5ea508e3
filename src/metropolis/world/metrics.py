"""Distance metrics between positions, chosen by name.

The scheduling rules hold for any metric that satisfies the triangle inequality and for which one step moves
an agent at most V. Euclidean distance is the paper's; walking distance (walls count, `walking.py`) and graph
hops (`graph.py`) live in their own modules and register here.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from typing import Protocol

from metropolis.registry import unknown
from metropolis.world.spatial import GridIndex, Pos, SpatialIndex


class Metric(Protocol):
    """A distance between positions plus the spatial index that can answer radius queries under it."""

    name: str

    def distance(self, a: Pos, b: Pos) -> float: ...

    def make_index(self) -> SpatialIndex: ...


class EuclideanMetric:
    """Straight-line distance in tiles, as in the AI Metropolis paper."""

    name = "euclidean"

    def __init__(self, cell: int = 16) -> None:
        # 16-tile cells: a radius query of R + V (about 5 tiles) probes 1 to 4 cells, and at Smallville's density
        # (one agent per 560 tiles) a cell rarely holds more than one agent.
        self.cell = cell

    # math.dist computes hypot of the differences, so the same float, without a Python frame per call: the
    # scheduler and the neighbour query ask it millions of times.
    distance = staticmethod(math.dist)

    def make_index(self) -> SpatialIndex:
        return GridIndex(self.cell)

    def nearest_all(self, points: Sequence[Pos]) -> list[float]:
        return nearest_others(points)


class NearDistance:
    """How the scheduling code measures two agents its index found near each other: the metric's `distance`, or
    a cheaper function equal to it on such pairs, when the metric offers one as `near_distance` (the towns of
    `copies` mode: its index looks inside one town, no agent ever leaves its town, and inside a town the distance
    is `math.dist`). The policy's scan and the neighbour query call it millions of times, so it is a class that
    compiled code calls natively (metropolis/compiled.py), not a Python callable."""

    __slots__ = ("_of",)

    def __init__(self, of: Callable[[Pos, Pos], float]) -> None:
        self._of = of

    def between(self, a: Pos, b: Pos) -> float:
        return self._of(a, b)


class TileDistance(NearDistance):
    """`math.dist` between tiles, worked out in place: on integer coordinates both are the correctly rounded
    square root of the exact dx^2 + dy^2 (test_spatial checks every offset up to 512 tiles and samples to 10^6),
    and compiled, this saves the call through Python that `math.dist` costs."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(math.dist)

    def between(self, a: Pos, b: Pos) -> float:
        dx = a[0] - b[0]
        dy = a[1] - b[1]
        return math.sqrt(float(dx * dx + dy * dy))  # a float: compiled, `math.sqrt` of an int is a Python call


def near_distance(metric: Metric) -> NearDistance:
    """The metric's distance for pairs its index found near each other (`NearDistance`)."""
    found: Callable[[Pos, Pos], float] = getattr(metric, "near_distance", metric.distance)
    # Compiled, `EuclideanMetric.distance` reads back as the staticmethod object around `math.dist`.
    return TileDistance() if getattr(found, "__func__", found) is math.dist else NearDistance(found)


def nearest_others(points: Sequence[Sequence[float]]) -> list[float]:
    """Each point's Euclidean distance to its nearest other point (inf when alone): one k-d tree for all of
    them, where a radius query per point would cost a Python loop each. Metrics that can answer this for every
    agent at once offer it as `nearest_all(points)` (the invocation-distance spatial bound asks it often)."""
    if len(points) < 2:
        return [math.inf] * len(points)
    import numpy as np
    from scipy.spatial import cKDTree

    xy = np.asarray(points, dtype=float)
    distances, _ = cKDTree(xy).query(xy, k=2)
    return [float(d) for d in distances[:, 1]]


def _euclidean(*, cell: int = 8, **_context: object) -> EuclideanMetric:
    return EuclideanMetric(cell)


# A factory receives the world it measures as keywords (`tilemap=`, `graph=`), uses what it needs and
# ignores the rest, so one call builds any metric for any world.
MetricFactory = Callable[..., Metric]
_REGISTRY: dict[str, MetricFactory] = {"euclidean": _euclidean}
# Metrics whose modules register themselves on import; imported on first use to keep scipy and networkx lazy.
_BUILTIN_MODULES = {"walking": "metropolis.world.walking", "hops": "metropolis.world.graph"}


def register_metric(name: str, factory: MetricFactory) -> None:
    _REGISTRY[name] = factory


def metric_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def make_metric(name: str, **kwargs: object) -> Metric:
    """Build a metric by name, passing the world (`tilemap=`, `graph=`) and options; unknown names list the
    valid ones."""
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _REGISTRY:
        raise unknown("metric", name, metric_names())
    return _REGISTRY[name](**kwargs)
