"""Shortest walking paths, for agents that walk real routes rather than teleport.

A path to `b` is read off the distance field toward `b`: from any tile, step to a neighbour one closer. Agents
walk toward a few places (their homes, the cafe, the park), so the fields of those targets stay in the walk
graph's LRU and each path costs only its own length. Ties are broken by the lowest node (row-major order), so
paths repeat.
"""

from __future__ import annotations

import math

import numpy as np

from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap
from metropolis.world.walking import WalkGraph


def shortest_path(tilemap: TileMap, a: Pos, b: Pos) -> list[Pos]:
    """The tiles of a shortest 4-connected walk from `a` to `b`, both ends included; [] when none exists."""
    graph = WalkGraph.of(tilemap)
    start, goal = graph.require(a), graph.require(b)
    if graph.fields.component[start] != graph.fields.component[goal]:
        return []
    toward = graph.fields.field(goal)
    path = [a]
    node = start
    while node != goal:
        node = _downhill(graph, toward, node)
        path.append(graph.tiles[node])
    return path


def step_toward(tilemap: TileMap, a: Pos, b: Pos) -> Pos | None:
    """The first tile of a shortest walk from `a` to `b`: `a` when there already, None when unreachable."""
    graph = WalkGraph.of(tilemap)
    start, goal = graph.require(a), graph.require(b)
    if start == goal:
        return a
    toward = graph.fields.field(goal)
    if math.isinf(toward[start]):
        return None
    return graph.tiles[_downhill(graph, toward, start)]


def _downhill(graph: WalkGraph, toward: np.ndarray, node: int) -> int:
    """The lowest neighbour one step closer to the field's source."""
    at = toward.item  # plain floats: numpy scalar indexing would cost most of the walk
    closer = at(node) - 1
    return next(n for n in graph.fields.neighbors(node) if at(n) == closer)
