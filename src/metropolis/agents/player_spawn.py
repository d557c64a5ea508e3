"""Where a person enters Smallville: next to the Lin family, where the story starts.

The Lins (John, Mei and their son Eddy) wake at home and talk over breakfast; the local-model demo
(`metropolis run --llm local`) starts with them. A player dropped anywhere else would walk for minutes before
meeting anyone. So the default spot is the tile of the Lin family's house's common room nearest the middle of
the house's beds (its spawning locations, where the family wakes): in the house, a few tiles from each of them.
`--player-at X,Y` (`RunConfig.player_at`) puts the person elsewhere, on a tile the residents can walk to.
"""

from __future__ import annotations

from metropolis.world.smallville import Town
from metropolis.world.spatial import Pos

HOUSE = "Lin family's house"
ROOM = f"{HOUSE}:common room"


def default_spawn(town: Town) -> Pos:
    """The common-room tile nearest the middle of the Lin family's beds (ties: the lowest (x, y))."""
    beds = [pos for address, pos in town.spawning.items() if f":{HOUSE}:" in f":{address}"]
    room = town.tiles_of(ROOM)
    if not beds:
        return room[0]
    cx = sum(x for x, _ in beds) / len(beds)
    cy = sum(y for _, y in beds) / len(beds)
    return min(room, key=lambda p: ((p[0] - cx) ** 2 + (p[1] - cy) ** 2, p))


def parse_at(text: str) -> Pos:
    """`X,Y` as a tile; a one-line ValueError for anything else."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"--player-at takes a tile X,Y (two whole numbers, e.g. 72,14), got {text!r}") from None


def spawn_point(town: Town, at: str = "") -> Pos:
    """Where the player starts: `at` ("X,Y", checked: a tile the residents can walk to), or by the Lins."""
    if not at:
        return default_spawn(town)
    pos = parse_at(at)
    tiles = town.tilemap
    if not tiles.inside(pos) or not tiles.is_walkable(pos) or not town.reachable(pos):
        x, y = default_spawn(town)
        where = "off the map" if not tiles.inside(pos) else "not a tile the residents can walk to"
        raise ValueError(
            f"--player-at {pos[0]},{pos[1]}: {where} ({tiles.width}x{tiles.height} tiles); "
            f"leave it out to start by the Lin family at {x},{y}"
        )
    return pos
