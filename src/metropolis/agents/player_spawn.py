"""Where a person enters Smallville: next to the Lin family, where the story starts.

The Lins (John, Mei and their son Eddy) wake at home and talk over breakfast; the local-model demo
(`metropolis run --llm local`) starts with them. A player dropped anywhere else would walk for minutes before
meeting anyone. So the default spot is the walkable tile of the Lin family's house from which most of the
family's beds (the house's spawning locations, where they wake) are in view, nearest the middle of the beds:
the person meets the family at the first step. `--player-at X,Y` (`RunConfig.player_at`) puts them elsewhere,
on a tile the residents can walk to.
"""

from __future__ import annotations

from metropolis.world.smallville import Town
from metropolis.world.spatial import Pos

HOUSE = "Lin family's house"


def default_spawn(town: Town) -> Pos:
    """The house tile (not a bed) with the most of the family's beds in view, then the nearest their middle,
    then the lowest (x, y)."""
    beds = [pos for address, pos in town.spawning.items() if f":{HOUSE}:" in f":{address}"]
    tiles = [t for t in town.tiles_of(HOUSE) if t not in beds]
    if not beds:
        return tiles[0]
    distance, radius = town.world.metric.distance, town.world.perception_radius
    cx = sum(x for x, _ in beds) / len(beds)
    cy = sum(y for _, y in beds) / len(beds)

    def rank(p: Pos) -> tuple[int, float, Pos]:
        in_view = sum(1 for bed in beds if distance(p, bed) <= radius)
        return -in_view, (p[0] - cx) ** 2 + (p[1] - cy) ** 2, p

    return min(tiles, key=rank)


def parse_at(text: str) -> Pos:
    """`X,Y` as a tile; a one-line ValueError for anything else."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"--player-at takes a tile X,Y (two whole numbers, e.g. 91,75), got {text!r}") from None


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
