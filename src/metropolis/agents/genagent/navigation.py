"""Where a named place is for an agent: the reachable tile of an address nearest to it, and walking paths."""

from __future__ import annotations

from metropolis.world.paths import shortest_path
from metropolis.world.smallville import Town
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap

__all__ = ["AreaIndex", "shortest_path"]


class AreaIndex:
    """The town's place look-ups as the agent needs them: unknown or unreachable addresses give nothing."""

    def __init__(self, town: Town) -> None:
        self.town = town
        self.tilemap: TileMap = town.tilemap

    def tiles(self, address: str) -> list[Pos]:
        try:
            return self.town.tiles_of(address)
        except ValueError:  # a place the persona knows but the map lacks (or walls off)
            return []

    def nearest(self, address: str, pos: Pos) -> Pos | None:
        """The tile of `address` closest to `pos` as the crow flies (ties: lowest tile)."""
        tiles = self.tiles(address)
        if not tiles:
            return None
        return min(tiles, key=lambda t: ((t[0] - pos[0]) ** 2 + (t[1] - pos[1]) ** 2, t))

    def area_of(self, pos: Pos) -> str | None:
        """`world:sector:arena` of a tile, if it has one."""
        place = self.town.place_of(pos)
        if place is None or not place.arena:
            return None
        return f"{place.world}:{place.sector}:{place.arena}"
