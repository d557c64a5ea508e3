"""A 2-D tile map: which tiles are walkable and which named place each tile belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metropolis.compiled import picklable
from metropolis.world.spatial import Pos


@dataclass(frozen=True, slots=True)
class Place:
    """A named address `world:sector:arena[:object]`, as in Generative Agents."""

    world: str
    sector: str = ""
    arena: str = ""
    obj: str = ""

    @property
    def address(self) -> str:
        return ":".join(p for p in (self.world, self.sector, self.arena, self.obj) if p)


@dataclass(slots=True)
class TileMap:
    """`walkable[y, x]` is True where an agent may stand; `places` maps tiles to named places."""

    width: int
    height: int
    walkable: np.ndarray
    places: dict[Pos, Place] = field(default_factory=dict)
    name: str = "map"
    # Structures derived from `walkable` and built once (the walking graph). A map is not edited once in use.
    derived: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.walkable.shape != (self.height, self.width):
            raise ValueError(
                f"walkable grid has shape {self.walkable.shape}, expected (height, width) = "
                f"({self.height}, {self.width})"
            )

    def inside(self, pos: Pos) -> bool:
        return 0 <= pos[0] < self.width and 0 <= pos[1] < self.height

    def is_walkable(self, pos: Pos) -> bool:
        # A set of the walkable tiles, built once: every move is checked, and indexing the array costs more.
        tiles = self.derived.get("walkable")
        if tiles is None:
            tiles = self.derived["walkable"] = frozenset(self.walkable_tiles())
        return pos in tiles  # type: ignore[operator]

    def walkable_neighbors(self, pos: Pos) -> Sequence[Pos]:
        """The 4-connected walkable neighbours: one step moves one tile, never diagonally. Kept per tile once
        asked (walkers ask at every step), so the sequence is shared: do not change it."""
        cache: dict[Pos, tuple[Pos, ...]] = self.derived.setdefault("neighbors", {})  # type: ignore[assignment]
        found = cache.get(pos)
        if found is None:
            x, y = pos
            found = cache[pos] = tuple(
                n for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)) if self.is_walkable(n)
            )
        return found

    def walkable_tiles(self) -> list[Pos]:
        ys, xs = np.nonzero(self.walkable)
        return list(zip(xs.tolist(), ys.tolist(), strict=True))  # Python ints, converted in one pass each

    def tiles_of(self, address_prefix: str) -> list[Pos]:
        """Tiles whose address starts with the parts of `address_prefix` (`world:sector[:arena[:object]]`),
        compared whole: a sector `Moore` never matches `Moore family's house`."""
        want = ":".join(part.strip() for part in address_prefix.split(":"))
        below = want + ":"
        return sorted(p for p, place in self.places.items() if (a := place.address) == want or a.startswith(below))

    @classmethod
    def open(cls, width: int, height: int, name: str = "open") -> TileMap:
        return cls(width, height, np.ones((height, width), dtype=bool), name=name)


picklable(Place)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
