"""The map the viewer draws: walls and named places of the Smallville tile map, of a bigger town made of its
copies (`smallville-copies-40`, `smallville-large-40`: the worlds of `bench sim`'s 1,000 agents), or a plain grid
for a world without one (graph worlds), sized to where the agents went."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from metropolis.paths import shared_data_dir
from metropolis.workloads.scaling import MODES, Layout
from metropolis.world.smallville import load_smallville, load_tilemap
from metropolis.world.tilemap import TileMap

MAX_TOWNS = 400  # copies of the town drawn as a map (10,000 agents); beyond that a plain grid


def scaled_json(mode: str, towns: int) -> dict[str, Any]:
    """The walls of `towns` copies of Smallville as `Layout` places them (with corridors in `large` mode), each
    copy with the base town's named places."""
    base = load_smallville()
    layout = Layout(base, towns, mode)
    tilemap = layout.world(4.0).tilemap
    assert tilemap is not None
    one = tilemap_json(base.tilemap)
    places = np.full((tilemap.height, tilemap.width), -1, dtype=np.int32)
    inside = np.zeros((tilemap.height, tilemap.width), dtype=bool)  # a grid's empty corner is no wall
    for t in range(towns):
        ox, oy = layout.offset(t)
        places[oy : oy + layout.height, ox : ox + layout.width] = one["places"]
        inside[oy : oy + layout.height, ox : ox + layout.width] = True
    walls = (~tilemap.walkable & inside).astype(np.int8).tolist()
    return {**tilemap_json(tilemap), "walls": walls, "places": places.tolist(), "names": one["names"]}


def town_map(world: str | None, extent: tuple[int, int]) -> dict[str, Any]:
    """The map of `world` as JSON: `width`, `height`, `walls` (rows of 0/1), and `places`: a tile grid of indices
    into `names` (sector:arena), -1 for none. `extent` is (max x, max y) of the agents, for a world without map."""
    root = shared_data_dir(required=False)
    known = root is not None and (root / "smallville").is_dir()
    if world == "smallville" and root is not None and known:
        return tilemap_json(load_tilemap(root / "smallville"))
    scaled = re.fullmatch(r"smallville-(\w+)-(\d+)", world or "")
    if scaled and known and scaled.group(1) in MODES and 0 < int(scaled.group(2)) <= MAX_TOWNS:
        return scaled_json(scaled.group(1), int(scaled.group(2)))
    width, height = extent[0] + 2, extent[1] + 2
    return {"width": width, "height": height, "walls": [], "places": [], "names": [], "world": world or "grid"}


def tilemap_json(tilemap: TileMap) -> dict[str, Any]:
    names: dict[str, int] = {}
    places = np.full((tilemap.height, tilemap.width), -1, dtype=np.int32)
    for (x, y), place in tilemap.places.items():
        label = ": ".join(p for p in (place.sector, place.arena) if p)
        places[y, x] = names.setdefault(label, len(names))
    return {
        "width": tilemap.width,
        "height": tilemap.height,
        "walls": (~tilemap.walkable).astype(np.int8).tolist(),
        "places": places.tolist(),
        "names": list(names),
        "world": tilemap.name,
    }
