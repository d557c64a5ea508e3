"""Where an address is on the map and how to walk there, one 4-connected walkable tile per step."""

from __future__ import annotations

from collections import deque

from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap

try:  # the Smallville branch's path finder, once merged
    from metropolis.world.paths import shortest_path as _library_path  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - until metropolis.world.paths lands
    _library_path = None


def _bfs_path(tilemap: TileMap, start: Pos, goal: Pos) -> list[Pos]:
    """Breadth-first search on walkable tiles; neighbours in the tile map's fixed order, so paths repeat."""
    if start == goal:
        return [start]
    came: dict[Pos, Pos | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for nxt in tilemap.walkable_neighbors(here):
            if nxt in came:
                continue
            came[nxt] = here
            if nxt == goal:
                path = [goal]
                while (prev := came[path[-1]]) is not None:
                    path.append(prev)
                return path[::-1]
            queue.append(nxt)
    return []


def shortest_path(tilemap: TileMap, start: Pos, goal: Pos) -> list[Pos]:
    """Tiles from `start` to `goal` inclusive; empty when unreachable."""
    if _library_path is not None:
        return list(_library_path(tilemap, start, goal))
    return _bfs_path(tilemap, start, goal)


class AreaIndex:
    """address -> walkable tiles, for every prefix (sector, arena, object) of the map's place addresses."""

    def __init__(self, tilemap: TileMap) -> None:
        self.tilemap = tilemap
        tiles: dict[str, list[Pos]] = {}
        for pos in sorted(tilemap.places):
            if not tilemap.is_walkable(pos):
                continue
            parts = tilemap.places[pos].address.split(":")
            for n in range(1, len(parts) + 1):
                tiles.setdefault(":".join(parts[:n]), []).append(pos)
        self._tiles = tiles

    def tiles(self, address: str) -> list[Pos]:
        return self._tiles.get(address, [])

    def nearest(self, address: str, pos: Pos) -> Pos | None:
        """The tile of `address` closest to `pos` as the crow flies (ties: lowest tile)."""
        tiles = self.tiles(address)
        if not tiles:
            return None
        return min(tiles, key=lambda t: ((t[0] - pos[0]) ** 2 + (t[1] - pos[1]) ** 2, t))

    def area_of(self, pos: Pos) -> str | None:
        """`world:sector:arena` of a tile, if it has one."""
        place = self.tilemap.places.get(pos)
        if place is None or not place.arena:
            return None
        return f"{place.world}:{place.sector}:{place.arena}"
