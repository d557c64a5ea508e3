"""The real Smallville town of Generative Agents ("the Ville"), loaded from `shared/data/smallville`.

Everything comes from the original data files: the 140 x 100 collision layer, the sector, arena, object and
spawning-location layers resolved to names through `special_blocks/`, the 25 personas' start tiles, identities
(`scratch.json`), known places (`spatial_memory.json`) and extra starting memories (the "whispers"). A bad or
missing file raises a one-line ValueError or FileNotFoundError that names the file and what is wrong with it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metropolis.paths import shared_data_dir
from metropolis.world.metrics import make_metric
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import Place, TileMap
from metropolis.world.walking import WalkGraph
from metropolis.world.world import World

COLLISION_ID = 32125
TOWN = "base_the_ville_n25"
MAZE = "the_ville/matrix"
LAYERS = ("sector", "arena", "game_object", "spawning_location")


@dataclass(slots=True)
class Persona:
    """One resident: where they start and who they are, as the persona files say."""

    name: str
    spawn: Pos
    scratch: dict[str, Any]
    spatial_memory: dict[str, Any]
    whispers: list[str]
    age: int | None = None
    innate: str = ""
    learned: str = ""
    currently: str = ""
    lifestyle: str = ""
    living_area: str = ""
    daily_plan_req: str = ""
    vision_r: int = 8
    att_bandwidth: int = 8


@dataclass(slots=True)
class Town:
    """The Smallville world with its residents, plus look-ups from place names to tiles."""

    world: World
    personas: list[Persona]
    spawning: dict[str, Pos] = field(default_factory=dict)
    start_date: str = ""
    root: Path | None = None
    _by_address: dict[str, list[Pos]] = field(default_factory=dict, init=False, repr=False)
    _regions: set[int] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        # The town is the walkable region of its residents' start tiles. The data has others: the margin
        # outside the town's outer wall (the largest!) and pockets behind counters, walkable but unreachable.
        graph = WalkGraph.of(self.tilemap)
        self._regions = {r for p in self.personas if (r := graph.region_of(p.spawn)) is not None}
        # Every tile under each of its address prefixes (sector, arena, object): a look-up is one dict get.
        for pos, place in sorted(self.tilemap.places.items()):
            parts = [place.world, place.sector, place.arena, place.obj]
            for depth in range(2, 5):
                if parts[depth - 1]:
                    self._by_address.setdefault(":".join(parts[:depth]), []).append(pos)

    @property
    def tilemap(self) -> TileMap:
        if self.world.tilemap is None:
            raise RuntimeError("this town's world has lost its tile map")
        return self.world.tilemap

    def persona(self, name: str) -> Persona:
        for p in self.personas:
            if p.name == name:
                return p
        raise KeyError(f"no persona named {name!r}; the town has: {', '.join(p.name for p in self.personas)}")

    def tiles_of(self, address: str, *, walkable: bool = True) -> list[Pos]:
        """Tiles of a named place, `sector[:arena[:object]]` with or without the leading world name.

        By default only the tiles residents can walk to (walkable, in the town's region); an address naming
        nothing raises ValueError.
        """
        tm = self.tilemap
        parts = [p.strip() for p in address.split(":")]
        world = next(iter(tm.places.values())).world if tm.places else ""
        if parts[0] != world:
            parts.insert(0, world)
        tiles = list(self._by_address.get(":".join(parts), []))
        if walkable:
            tiles = [t for t in tiles if self.reachable(t)]
        if not tiles:
            sectors = sorted({p.sector for p in tm.places.values()})
            raise ValueError(f"no {'reachable ' if walkable else ''}tile at {address!r}; sectors: {', '.join(sectors)}")
        return tiles

    def reachable(self, pos: Pos) -> bool:
        """Whether residents can walk to `pos` (it is on the walkable region of their start tiles)."""
        return WalkGraph.of(self.tilemap).region_of(pos) in self._regions

    def arena_tiles(self, sector: str, arena: str) -> list[Pos]:
        return self.tiles_of(f"{sector}:{arena}")

    def place_of(self, pos: Pos) -> Place | None:
        return self.tilemap.places.get(pos)


def load_smallville(
    root: Path | None = None,
    *,
    metric: str = "euclidean",
    perception_radius: float = 4.0,
    max_velocity: float = 1.0,
    agents: int | None = None,
) -> Town:
    """Load the Ville and its residents (the first `agents` of the 25, all when None)."""
    root = Path(root) if root is not None else _default_root()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no Smallville data folder here")
    tilemap = load_tilemap(root)
    meta = _read_json(root / TOWN / "reverie" / "meta.json")
    names = _field(meta, "persona_names", list, root / TOWN / "reverie" / "meta.json")
    if agents is not None:
        if not 1 <= agents <= len(names):
            raise ValueError(f"agents must be within 1..{len(names)} for Smallville, got {agents}")
        names = names[:agents]
    personas = load_personas(root, names, tilemap)
    world = World(
        metric=make_metric(metric, tilemap=tilemap),
        perception_radius=perception_radius,
        max_velocity=max_velocity,
        tilemap=tilemap,
        seconds_per_step=int(meta.get("sec_per_step", 10)),
        name="smallville",
    )
    spawning = _spawning(root, tilemap)
    return Town(world, personas, spawning, str(meta.get("start_date", "")), root)


# -- the map --


def load_tilemap(root: Path) -> TileMap:
    """The collision layer and the named places of every tile."""
    matrix = root / MAZE
    info = _read_json(matrix / "maze_meta_info.json")
    width = _field(info, "maze_width", int, matrix / "maze_meta_info.json")
    height = _field(info, "maze_height", int, matrix / "maze_meta_info.json")
    collision = read_layer(matrix / "maze" / "collision_maze.csv", width, height)
    tilemap = TileMap(width, height, collision != COLLISION_ID, name="the_ville")
    world_rows = read_blocks(matrix / "special_blocks" / "world_blocks.csv", 2)
    if not world_rows:
        raise ValueError(f"{matrix / 'special_blocks' / 'world_blocks.csv'}: no world name")
    world = next(iter(world_rows.values()))[-1]
    layers = {}
    for layer in LAYERS[:3]:
        ids = read_layer(matrix / "maze" / f"{layer}_maze.csv", width, height)
        names = read_blocks(matrix / "special_blocks" / f"{layer}_blocks.csv", 3)
        layers[layer] = _resolve(ids, names, matrix / "maze" / f"{layer}_maze.csv")
    sector, arena, obj = layers["sector"], layers["arena"], layers["game_object"]
    for y, x in zip(*np.nonzero(sector != ""), strict=True):
        tilemap.places[(int(x), int(y))] = Place(world, sector[y, x], arena[y, x], obj[y, x])
    return tilemap


def read_layer(path: Path, width: int, height: int) -> np.ndarray:
    """One maze CSV: a single line of width * height block ids, row-major; returns ids[y, x]."""
    text = _read_text(path)
    try:
        ids = np.array([int(v) for v in text.split(",")], dtype=np.int64)
    except ValueError:
        bad = next(v for v in text.split(",") if not v.strip().lstrip("-").isdigit())
        raise ValueError(f"{path}: block id {bad.strip()!r} is not an integer") from None
    if ids.size != width * height:
        raise ValueError(f"{path}: {ids.size} block ids, expected {width} x {height} = {width * height}")
    return ids.reshape(height, width)


def read_blocks(path: Path, min_fields: int) -> dict[int, list[str]]:
    """A special-blocks CSV: `id, world, sector[, arena[, object]]` per line; names are stripped."""
    rows: dict[int, list[str]] = {}
    for n, row in enumerate(csv.reader(_read_text(path).splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        cells = [c.strip() for c in row]
        if len(cells) < min_fields or not cells[0].isdigit():
            raise ValueError(f"{path}: line {n} should be 'id, world, name...' with {min_fields}+ fields: {row}")
        rows[int(cells[0])] = cells[1:]
    return rows


def _resolve(ids: np.ndarray, names: dict[int, list[str]], path: Path) -> np.ndarray:
    """Block ids to names (the last field of the block's row); 0 is nothing."""
    unknown = sorted(set(np.unique(ids).tolist()) - set(names) - {0})
    if unknown:
        raise ValueError(f"{path}: block ids {unknown[:5]} are not in the matching special_blocks file")
    out = np.full(ids.shape, "", dtype=object)
    for block, row in names.items():
        out[ids == block] = row[-1]
    return out


def _spawning(root: Path, tilemap: TileMap) -> dict[str, Pos]:
    """Spawning locations by address `world:sector:arena:sp-X`."""
    matrix = root / MAZE
    ids = read_layer(matrix / "maze" / "spawning_location_maze.csv", tilemap.width, tilemap.height)
    blocks = read_blocks(matrix / "special_blocks" / "spawning_location_blocks.csv", 5)
    out: dict[str, Pos] = {}
    for y, x in zip(*np.nonzero(ids), strict=True):
        row = blocks.get(int(ids[y, x]))
        if row is not None:
            out[":".join(row)] = (int(x), int(y))
    return out


# -- the residents --


def load_personas(root: Path, names: list[str], tilemap: TileMap) -> list[Persona]:
    env_path = root / TOWN / "environment" / "0.json"
    env = _read_json(env_path)
    whispers = load_whispers(root / "the_ville" / "agent_history_init_n25.csv")
    out = []
    for name in names:
        spawn = _start_tile(env, name, env_path, tilemap)
        folder = root / TOWN / "personas" / name / "bootstrap_memory"
        scratch = _read_json(folder / "scratch.json")
        spatial = _read_json(folder / "spatial_memory.json")
        out.append(_persona(name, spawn, scratch, spatial, whispers.get(name, []), folder / "scratch.json"))
    return out


def _start_tile(env: dict[str, Any], name: str, path: Path, tilemap: TileMap) -> Pos:
    record = env.get(name)
    if not isinstance(record, dict):
        raise ValueError(f"{path}: no start tile for persona {name!r}")
    x, y = record.get("x"), record.get("y")
    if not isinstance(x, int) or not isinstance(y, int):
        raise ValueError(f"{path}: persona {name!r} needs integer 'x' and 'y', got {x!r}, {y!r}")
    if not tilemap.inside((x, y)):
        raise ValueError(f"{path}: start tile {(x, y)} of {name!r} is off the {tilemap.width}x{tilemap.height} map")
    if not tilemap.is_walkable((x, y)):
        raise ValueError(f"{path}: start tile {(x, y)} of {name!r} is blocked in the collision layer")
    return (x, y)


def _persona(
    name: str, spawn: Pos, scratch: dict[str, Any], spatial: dict[str, Any], whispers: list[str], path: Path
) -> Persona:
    def text(key: str) -> str:
        value = scratch.get(key) or ""
        if not isinstance(value, str):
            raise ValueError(f"{path}: field {key!r} should be text, got {value!r}")
        return value

    age = scratch.get("age")
    if age is not None and not isinstance(age, int):
        raise ValueError(f"{path}: field 'age' should be an integer, got {age!r}")
    return Persona(
        name=name,
        spawn=spawn,
        scratch=scratch,
        spatial_memory=spatial,
        whispers=whispers,
        age=age,
        innate=text("innate"),
        learned=text("learned"),
        currently=text("currently"),
        lifestyle=text("lifestyle"),
        living_area=text("living_area"),
        daily_plan_req=text("daily_plan_req"),
        vision_r=_field(scratch, "vision_r", int, path, default=8),
        att_bandwidth=_field(scratch, "att_bandwidth", int, path, default=8),
    )


def load_whispers(path: Path) -> dict[str, list[str]]:
    """`Name,Whisper` rows: extra starting memories per persona, separated by ';'."""
    reader = csv.reader(_read_text(path).splitlines())
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["Name", "Whisper"]:
        raise ValueError(f"{path}: the header should be 'Name,Whisper', got {header}")
    out: dict[str, list[str]] = {}
    for n, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 2:
            raise ValueError(f"{path}: line {n} should have 2 fields (Name,Whisper), got {len(row)}")
        out[row[0].strip()] = [w.strip() for w in row[1].split(";") if w.strip()]
    return out


# -- file helpers --


def _default_root() -> Path:
    data = shared_data_dir()
    if data is None:  # shared_data_dir raises instead, when required
        raise FileNotFoundError("cannot find the shared data folder")
    return data / "smallville"


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing Smallville data file")
    return path.read_text(encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _field(record: dict[str, Any], key: str, kind: type, path: Path, default: Any = None) -> Any:
    value = record.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{path}: field {key!r} should be {kind.__name__}, got {value!r}")
    return value
