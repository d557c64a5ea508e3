"""The world: tile maps, named places, distance metrics and spatial indexes.

Kept light to import: the walking metric, paths, graphs, Smallville and generated maps (scipy, networkx) live
in their own modules (`walking`, `paths`, `graph`, `smallville`, `generated`), and `make_metric` imports them
on use.
"""

from metropolis.world.metrics import EuclideanMetric, Metric, make_metric, metric_names, register_metric
from metropolis.world.spatial import GridIndex, Pos, SpatialIndex
from metropolis.world.tilemap import Place, TileMap
from metropolis.world.world import World

__all__ = [
    "EuclideanMetric",
    "GridIndex",
    "Metric",
    "Place",
    "Pos",
    "SpatialIndex",
    "TileMap",
    "World",
    "make_metric",
    "metric_names",
    "register_metric",
]
