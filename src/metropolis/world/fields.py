"""Breadth-first distance fields on an unweighted graph, kept in a byte-bounded LRU.

Walking distance on a tile map and hop count on a social graph are both shortest paths in an unweighted graph,
and the scheduler asks the same kind of question over and over: how far is this agent from each of the others?
One distance field (the BFS distances from one source to every node, one C-speed pass of scipy) answers all of
them, so fields are cached per source, and `distance(u, v)` first looks for a field of either end. Near pairs
can also be settled by a BFS that stops at a limit, which costs only the ball it explores.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
from mypy_extensions import mypyc_attr
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components, dijkstra

DEFAULT_MAX_BYTES = 64 << 20


@mypyc_attr(allow_interpreted_subclasses=True)  # unpickled without __init__ (Ray): compiled.py
class DistanceFields:
    """Hop distances between the nodes `0..n-1` of an undirected, unweighted graph."""

    __slots__ = ("_fields", "_indices", "_indptr", "capacity", "component", "graph", "hits", "misses", "n")

    def __init__(self, adjacency: object, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        graph = csr_array(adjacency)
        if graph.shape[0] != graph.shape[1]:
            raise ValueError(f"adjacency must be square, got shape {graph.shape}")
        if max_bytes <= 0:
            raise ValueError(f"the field cache needs a positive size in bytes, got {max_bytes}")
        # Symmetric and float64 on purpose: scipy then runs BFS on the matrix as is, without symmetrising or
        # converting it on every call (which costs as much as the BFS itself).
        self.graph = (graph + graph.T).tocsr().astype(np.float64)
        self.graph.sort_indices()
        self.n = int(graph.shape[0])
        _, labels = connected_components(self.graph, directed=False)
        self.component: list[int] = labels.tolist()
        self._indptr: list[int] = self.graph.indptr.tolist()
        self._indices: list[int] = self.graph.indices.tolist()
        self._fields: OrderedDict[int, np.ndarray] = OrderedDict()
        self.capacity = max(1, max_bytes // (4 * max(1, self.n)))
        self.hits = 0
        self.misses = 0

    def neighbors(self, u: int) -> list[int]:
        """The neighbours of `u`, in increasing node order (so walks built on them are repeatable)."""
        return self._indices[self._indptr[u] : self._indptr[u + 1]]

    def field(self, source: int) -> np.ndarray:
        """float32 distances from `source` to every node; `inf` where unreachable. Do not modify it."""
        fields = self._fields
        found = fields.get(source)
        if found is not None:
            fields.move_to_end(source)
            self.hits += 1
            return found
        self.misses += 1
        dist = dijkstra(self.graph, directed=True, unweighted=True, indices=source)
        found = dist.astype(np.float32)
        found.flags.writeable = False
        fields[source] = found
        if len(fields) > self.capacity:
            fields.popitem(last=False)
        return found

    def cached(self, source: int) -> np.ndarray | None:
        return self._fields.get(source)

    def distance(self, u: int, v: int) -> float:
        """Exact hop distance; a cached field of either end answers without a BFS."""
        if u == v:
            return 0.0
        if self.component[u] != self.component[v]:
            return math.inf
        fields = self._fields
        found = fields.get(u)
        if found is not None:
            self.hits += 1
            return found.item(v)
        found = fields.get(v)
        if found is not None:
            self.hits += 1
            return found.item(u)
        return self.field(u).item(v)

    def within(self, u: int, v: int, limit: float) -> float | None:
        """The exact distance if it is at most `limit`, else None; costs at most the BFS ball of `limit`."""
        if u == v:
            return 0.0 if limit >= 0 else None
        if limit < 1 or self.component[u] != self.component[v]:
            return None
        found = self._fields.get(u)
        if found is None:
            found = self._fields.get(v)
            u, v = v, u
        if found is not None:
            d: float = found.item(v)
            return d if d <= limit else None
        return self._bounded_bfs(u, v, int(limit))

    def _bounded_bfs(self, u: int, v: int, depth: int) -> float | None:
        indptr, indices = self._indptr, self._indices
        seen = {u}
        frontier = [u]
        for d in range(1, depth + 1):
            nxt = []
            for a in frontier:
                for b in indices[indptr[a] : indptr[a + 1]]:
                    if b == v:
                        return float(d)
                    if b not in seen:
                        seen.add(b)
                        nxt.append(b)
            if not nxt:
                return None
            frontier = nxt
        return None

    def ball(self, u: int, radius: float) -> np.ndarray:
        """The nodes within `radius` of `u` (an int array), from the cached field of `u`."""
        return np.flatnonzero(self.field(u) <= radius)

    def warm(self, sources: Iterable[int]) -> None:
        """Compute the fields of `sources` now (frequent targets), so later queries find them cached."""
        for s in sources:
            self.field(s)
