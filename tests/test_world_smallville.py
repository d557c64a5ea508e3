"""The real Smallville town: map, places, personas, bad files, and an end-to-end run on it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from metropolis.agents import RandomWalker
from metropolis.engine import Simulation
from metropolis.kernel import Environment
from metropolis.paths import shared_data_dir
from metropolis.runtime.virtual import VirtualRuntime
from metropolis.world.generated import random_spawns
from metropolis.world.paths import shortest_path
from metropolis.world.smallville import Town, load_smallville
from metropolis.world.walking import WalkGraph

DATA = shared_data_dir(required=False)
ROOT = DATA / "smallville" if DATA is not None else None
pytestmark = pytest.mark.skipif(
    ROOT is None or not (ROOT / "the_ville").is_dir(),
    reason="shared/data/smallville is missing (set $METROPOLIS_SHARED to the shared folder)",
)


@pytest.fixture(scope="module")
def town() -> Town:
    return load_smallville(metric="walking")


def test_the_map_is_140_by_100_with_the_collision_layer(town: Town) -> None:
    tm = town.tilemap
    assert (tm.width, tm.height) == (140, 100)
    raw = (ROOT / "the_ville/matrix/maze/collision_maze.csv").read_text().split(",")  # type: ignore[operator]
    assert int((~tm.walkable).sum()) == sum(v.strip() == "32125" for v in raw) == 2064
    # Row-major with width 140: entry y * 140 + x is tile (x, y).
    y, x = 3, 40
    assert tm.is_walkable((x, y)) == (raw[y * 140 + x].strip() != "32125")


def test_the_25_personas_start_on_walkable_tiles_from_the_environment_file(town: Town) -> None:
    env = json.loads((ROOT / "base_the_ville_n25/environment/0.json").read_text())  # type: ignore[operator]
    assert len(town.personas) == 25
    assert town.personas[0].name == "Latoya Williams"
    for p in town.personas:
        assert p.spawn == (env[p.name]["x"], env[p.name]["y"])
        assert town.tilemap.is_walkable(p.spawn)
    isabella = town.persona("Isabella Rodriguez")
    assert isabella.spawn == (72, 14)
    place = town.place_of(isabella.spawn)
    assert place is not None and place.sector == "Isabella Rodriguez's apartment" and place.arena == "main room"


def test_persona_identity_fields_come_from_scratch_and_whispers(town: Town) -> None:
    isabella = town.persona("Isabella Rodriguez")
    assert isabella.age == 34
    assert isabella.vision_r == 8
    assert isabella.innate == "friendly, outgoing, hospitable"
    assert isabella.living_area == "the Ville:Isabella Rodriguez's apartment:main room"
    assert "Hobbs Cafe" in isabella.learned
    assert isabella.whispers[0].startswith("You are excited to be planning a Valentine's Day party")
    assert all(";" not in w for w in isabella.whispers)
    assert "Hobbs Cafe" in isabella.spatial_memory["the Ville"]


def test_isabellas_cafe_resolves_to_walkable_tiles(town: Town) -> None:
    cafe = town.tiles_of("Hobbs Cafe")
    assert cafe == town.tiles_of("the Ville:Hobbs Cafe")
    assert len(cafe) > 20
    for tile in cafe:
        place = town.place_of(tile)
        assert place is not None and place.sector == "Hobbs Cafe"
        assert town.tilemap.is_walkable(tile)
    counter = town.tiles_of("Hobbs Cafe:cafe:behind the cafe counter")
    assert counter and set(counter) <= set(cafe)
    assert town.arena_tiles("Hobbs Cafe", "cafe") == town.tiles_of("Hobbs Cafe:cafe")
    with pytest.raises(ValueError, match="no reachable tile at 'Hobbs'"):
        town.tiles_of("Hobbs")  # whole names only


def test_every_living_area_and_known_place_resolves(town: Town) -> None:
    for p in town.personas:
        assert town.tiles_of(p.living_area)
        for world, sectors in p.spatial_memory.items():
            for sector, arenas in sectors.items():
                for arena in arenas:
                    assert town.tiles_of(f"{world}:{sector}:{arena}"), (p.name, sector, arena)


def test_the_town_is_one_walkable_region_and_the_margin_is_another(town: Town) -> None:
    graph = WalkGraph.of(town.tilemap)
    home = graph.region_of(town.personas[0].spawn)
    assert all(graph.region_of(p.spawn) == home for p in town.personas)
    # The biggest walkable region is the margin outside the town wall: walkable, but nobody can get there.
    labels = np.asarray(graph.fields.component)
    margin = int(np.bincount(labels).argmax())
    assert margin != home and graph.region_of((0, 0)) == margin
    assert town.tilemap.is_walkable((0, 0)) and not town.reachable((0, 0))
    everywhere = town.tiles_of("Hobbs Cafe", walkable=False)
    assert set(town.tiles_of("Hobbs Cafe")) == {t for t in everywhere if town.reachable(t)}
    spawns = random_spawns(town.tilemap, 500, seed=3, near=town.personas[0].spawn)
    assert all(town.reachable(t) for t in spawns) and len(set(spawns)) == 500
    wall = next(t for t in everywhere if not town.tilemap.is_walkable(t))
    with pytest.raises(ValueError, match=rf"tile \({wall[0]}, {wall[1]}\) is not walkable"):
        random_spawns(town.tilemap, 5, seed=3, near=wall)


def test_spawning_locations_are_named_walkable_tiles(town: Town) -> None:
    assert len(town.spawning) == 40
    assert town.spawning["the Ville:artist's co-living space:Latoya Williams's room:sp-A"] == (16, 18)
    assert all(town.tilemap.is_walkable(t) for t in town.spawning.values())


def test_every_persona_can_walk_to_every_other(town: Town) -> None:
    metric = town.world.metric
    a, b = town.persona("Isabella Rodriguez"), town.persona("Klaus Mueller")
    d = metric.distance(a.spawn, b.spawn)
    assert math.hypot(a.spawn[0] - b.spawn[0], a.spawn[1] - b.spawn[1]) <= d < math.inf
    path = shortest_path(town.tilemap, a.spawn, b.spawn)
    assert len(path) == d + 1
    for p in town.personas:
        assert all(metric.distance(p.spawn, q.spawn) < math.inf for q in town.personas)


def test_agents_takes_the_first_personas_and_metric_is_by_name() -> None:
    small = load_smallville(agents=3, perception_radius=8.0)
    assert [p.name for p in small.personas] == ["Latoya Williams", "Rajiv Patel", "Abigail Chen"]
    assert small.world.metric.name == "euclidean" and small.world.R == 8.0
    assert small.world.seconds_per_step == 10
    with pytest.raises(ValueError, match=r"agents must be within 1\.\.25"):
        load_smallville(agents=26)
    with pytest.raises(ValueError, match="unknown metric 'manhattan'"):
        load_smallville(metric="manhattan")


# -- bad files --


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    dst = tmp_path / "smallville"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns("day_n3", "associative_memory"))  # type: ignore[arg-type]
    return dst


def test_missing_folder_and_file_name_the_path(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Smallville data folder"):
        load_smallville(tmp_path / "nowhere")
    (copy / "the_ville/matrix/maze/arena_maze.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"arena_maze\.csv: missing Smallville data file"):
        load_smallville(copy)


def test_a_short_maze_is_a_one_line_value_error(copy: Path) -> None:
    path = copy / "the_ville/matrix/maze/sector_maze.csv"
    path.write_text(", ".join(path.read_text().split(",")[:-1]))
    with pytest.raises(ValueError, match=r"sector_maze\.csv: 13999 block ids, expected 140 x 100 = 14000"):
        load_smallville(copy)


def test_an_unknown_block_id_names_the_layer(copy: Path) -> None:
    path = copy / "the_ville/matrix/maze/arena_maze.csv"
    path.write_text("99999, " + ",".join(path.read_text().split(",")[1:]))
    with pytest.raises(ValueError, match=r"arena_maze\.csv: block ids \[99999\] are not in the matching"):
        load_smallville(copy)


def test_a_blocked_start_tile_is_reported(copy: Path) -> None:
    collision = (copy / "the_ville/matrix/maze/collision_maze.csv").read_text().split(",")
    i = next(i for i, v in enumerate(collision) if v.strip() == "32125")
    x, y = i % 140, i // 140
    path = copy / "base_the_ville_n25/environment/0.json"
    env = json.loads(path.read_text())
    env["Isabella Rodriguez"].update(x=x, y=y)
    path.write_text(json.dumps(env))
    with pytest.raises(ValueError, match=rf"start tile \({x}, {y}\) of 'Isabella Rodriguez' is blocked"):
        load_smallville(copy)


def test_bad_scratch_json_names_the_file(copy: Path) -> None:
    path = copy / "base_the_ville_n25/personas/Rajiv Patel/bootstrap_memory/scratch.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"Rajiv Patel/bootstrap_memory/scratch\.json: not valid JSON"):
        load_smallville(copy)
    path.write_text(json.dumps({"age": "old"}))
    with pytest.raises(ValueError, match=r"scratch\.json: field 'age' should be an integer"):
        load_smallville(copy)


# -- end to end --


def _walk(town: Town, scheduler: str) -> Simulation:
    agents = [RandomWalker(p.name, p.spawn) for p in town.personas]
    sim = Simulation(
        town.world, agents, steps=200, scheduler=scheduler, seed=7, check_causality=True, keep_history=True
    )
    VirtualRuntime(sim, sim_env := Environment()).run()
    assert sim_env.now == 0.0  # no LLM calls: virtual time never advances
    return sim


def test_25_random_walkers_on_smallville_agree_between_metropolis_and_serial(town: Town) -> None:
    ooo, serial = _walk(town, "metropolis"), _walk(town, "serial")
    assert ooo.done() and serial.done()
    for i in range(25):
        assert ooo.history(i) == serial.history(i), town.personas[i].name
        assert len(ooo.history(i)) == 201
    assert [a.snapshot() for a in ooo.agents] == [a.snapshot() for a in serial.agents]
    # Not a vacuous run: walkers moved along walkable tiles, and some met and talked.
    assert sum(ooo.history(i)[-1].pos != ooo.history(i)[0].pos for i in range(25)) >= 20
    assert sum(len(s.events) for i in range(25) for s in ooo.history(i)) > 0
    assert ooo.scheduler.dispatched_units < serial.scheduler.dispatched_units
