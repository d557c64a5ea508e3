"""Non-spatial worlds: agents live on the nodes of a social graph and distance counts hops.

The scheduling rules only need a metric where one step moves an agent at most V, so with V = 1 hop and R = k
hops an agent perceives its k-hop neighbourhood, and the out-of-order scheduler works unchanged. Positions are
`(node, 0)` so the rest of the engine keeps its `tuple[int, int]`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from metropolis.registry import check_name
from metropolis.world.fields import DistanceFields
from metropolis.world.metrics import register_metric
from metropolis.world.spatial import Pos, SpatialIndex

if TYPE_CHECKING:
    import networkx as nx

GRAPH_KINDS = ("small_world", "scale_free")


@mypyc_attr(allow_interpreted_subclasses=True)  # unpickled without __init__ (Ray): compiled.py
class HopMetric:
    """Hop count between graph nodes; `inf` between nodes of different components."""

    name = "hops"

    def __init__(self, graph: nx.Graph, *, ball_cache: int = 4096) -> None:
        import networkx as nx

        nodes = list(graph.nodes)
        if not nodes:
            raise ValueError("the hop metric needs a graph with at least one node")
        bad = next((n for n in nodes if not isinstance(n, int) or isinstance(n, bool)), None)
        if bad is not None:
            raise ValueError(f"graph nodes must be ints (positions are (node, 0)); found node {bad!r}")
        self.graph = graph
        self._index_of = {node: i for i, node in enumerate(nodes)}
        self.fields = DistanceFields(nx.to_scipy_sparse_array(graph, nodelist=nodes, weight=None, format="csr"))
        self.nodes = nodes
        self.ball_cache = ball_cache

    def index_of(self, pos: Pos) -> int:
        i = self._index_of.get(pos[0])
        if i is None or pos[1] != 0:
            raise ValueError(f"position {pos} is not (node, 0) for a node of the graph")
        return i

    def distance(self, a: Pos, b: Pos) -> float:
        return self.fields.distance(self.index_of(a), self.index_of(b))

    def distance_within(self, a: Pos, b: Pos, limit: float) -> bool:
        return self.fields.within(self.index_of(a), self.index_of(b), limit) is not None

    def make_index(self) -> SpatialIndex:
        return HopIndex(self)


@mypyc_attr(allow_interpreted_subclasses=True)  # unpickled without __init__ (Ray): compiled.py
class HopIndex(SpatialIndex):
    """Agents by node; `near` is the exact BFS ball of radius floor(r), from a cache of recent balls."""

    __slots__ = ("_balls", "_occupants", "metric")

    def __init__(self, metric: HopMetric) -> None:
        self.metric = metric
        self._occupants: dict[int, set[int]] = {}
        self._balls: OrderedDict[tuple[int, int], list[int]] = OrderedDict()

    def add(self, key: int, pos: Pos) -> None:
        self._occupants.setdefault(self.metric.index_of(pos), set()).add(key)

    def remove(self, key: int, pos: Pos) -> None:
        node = self.metric.index_of(pos)
        keys = self._occupants[node]
        keys.discard(key)
        if not keys:
            del self._occupants[node]

    def move(self, key: int, old: Pos, new: Pos) -> None:
        if old != new:
            self.remove(key, old)
            self.add(key, new)

    def near(self, pos: Pos, radius: float) -> Iterator[int]:
        node = self.metric.index_of(pos)
        occupants = self._occupants
        if math.isinf(radius):
            for keys in occupants.values():
                yield from keys
            return
        ball = self._ball(node, math.floor(radius))
        if len(ball) <= len(occupants):
            for n in ball:
                here = occupants.get(n)
                if here:
                    yield from here
            return
        # Fewer occupied nodes than ball nodes: check each occupied node's distance instead.
        field = self.metric.fields.field(node)
        for n, keys in occupants.items():
            if field[n] <= radius:
                yield from keys

    def _ball(self, node: int, hops: int) -> list[int]:
        balls = self._balls
        ball = balls.get((node, hops))
        if ball is not None:
            balls.move_to_end((node, hops))
            return ball
        ball = self.metric.fields.ball(node, hops).tolist() if hops >= 0 else []
        balls[(node, hops)] = ball
        if len(balls) > self.metric.ball_cache:
            balls.popitem(last=False)
        return ball

    def __len__(self) -> int:
        return sum(len(k) for k in self._occupants.values())


def social_graph(n_nodes: int, seed: int, kind: str = "small_world", degree: int = 6) -> nx.Graph:
    """A connected social graph on nodes `0..n_nodes-1`: Watts-Strogatz small world (rewiring 0.1) or
    Barabasi-Albert scale free (`degree // 2` links per new node)."""
    import networkx as nx

    check_name(kind, GRAPH_KINDS, "social graph kind")
    if degree < 2 or n_nodes <= degree:
        raise ValueError(
            f"a social graph needs degree >= 2 and more nodes than that; got {n_nodes} nodes, degree {degree}"
        )
    if kind == "small_world":
        return nx.connected_watts_strogatz_graph(n_nodes, degree, 0.1, tries=100, seed=seed)
    return nx.barabasi_albert_graph(n_nodes, degree // 2, seed=seed)


def _hops(*, graph: nx.Graph | None = None, **_context: object) -> HopMetric:
    if graph is None:
        raise ValueError("the hop metric needs the world's graph: make_metric('hops', graph=...)")
    return HopMetric(graph)


register_metric("hops", _hops)
