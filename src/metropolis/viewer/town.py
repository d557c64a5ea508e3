"""The map the viewer draws: walls and named places of the Smallville tile map, or a plain grid for a world
without one (generated and graph worlds), sized to where the agents went."""

from __future__ import annotations

from typing import Any

import numpy as np

from metropolis.paths import shared_data_dir
from metropolis.world.smallville import load_tilemap
from metropolis.world.tilemap import TileMap


def town_map(world: str | None, extent: tuple[int, int]) -> dict[str, Any]:
    """The map of `world` as JSON: `width`, `height`, `walls` (rows of 0/1), and `places`: a tile grid of indices
    into `names` (sector:arena), -1 for none. `extent` is (max x, max y) of the agents, for a world without map."""
    if world == "smallville":
        root = shared_data_dir(required=False)
        if root is not None and (root / "smallville").is_dir():
            return tilemap_json(load_tilemap(root / "smallville"))
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
