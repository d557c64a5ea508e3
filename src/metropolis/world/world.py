"""The world an engine runs: a map (or a graph), a metric, and the two parameters the scheduling rules use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metropolis.world.metrics import EuclideanMetric, Metric
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap

if TYPE_CHECKING:
    import networkx as nx


@dataclass(slots=True)
class World:
    """Perception radius R and max velocity V are world parameters: the rules are only as safe as these are honest.

    `tilemap` is None for non-spatial worlds: there `graph` (networkx, int nodes) holds the agents, positions
    are `(node, 0)` and the metric counts hops.
    """

    metric: Metric = field(default_factory=EuclideanMetric)
    perception_radius: float = 4.0
    max_velocity: float = 1.0
    tilemap: TileMap | None = None
    seconds_per_step: int = 10
    name: str = "world"
    graph: nx.Graph | None = None

    def __post_init__(self) -> None:
        if self.perception_radius < 0:
            raise ValueError(f"perception radius R must be >= 0, got {self.perception_radius}")
        if self.max_velocity <= 0:
            raise ValueError(f"max velocity V must be > 0, got {self.max_velocity}")
        if self.seconds_per_step <= 0:
            raise ValueError(f"seconds per step must be > 0, got {self.seconds_per_step}")

    @property
    def R(self) -> float:
        return self.perception_radius

    @property
    def V(self) -> float:
        return self.max_velocity

    def moves(self, pos: Pos) -> Sequence[Pos]:
        """Where an agent standing at `pos` may be one step later, staying put excluded."""
        if self.tilemap is not None:
            return self.tilemap.walkable_neighbors(pos)
        if self.graph is not None:
            return [(n, 0) for n in sorted(self.graph.neighbors(pos[0]))]
        raise RuntimeError(f"world {self.name!r} has neither a tile map nor a graph to move on")

    def check_move(self, old: Pos, new: Pos) -> str | None:
        """Why a one-step move is illegal, or None when it is fine."""
        if self.tilemap is not None and not self.tilemap.is_walkable(new):
            return f"tile {new} is not walkable"
        if self.graph is not None and (new[1] != 0 or new[0] not in self.graph):
            return f"position {new} is not (node, 0) for a node of the graph"
        d = self.metric.distance(old, new)
        if d > self.max_velocity + 1e-9:
            return f"move {old} -> {new} covers {d:.2f}, more than V = {self.max_velocity}"
        return None
