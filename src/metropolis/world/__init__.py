"""The world: tile maps, named places, distance metrics and spatial indexes."""

from metropolis.world.metrics import EuclideanMetric, Metric, Pos, metric_names
from metropolis.world.spatial import GridIndex, SpatialIndex
from metropolis.world.world import World

__all__ = ["EuclideanMetric", "GridIndex", "Metric", "Pos", "SpatialIndex", "World", "metric_names"]
