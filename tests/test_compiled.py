"""The compiled build's guard: a stale extension is found, METROPOLIS_PURE=1 runs the sources."""

from __future__ import annotations

import copy
import copyreg
import importlib
import json
import os
import pickle
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from metropolis import compiled
from metropolis.agents import RandomWalker
from metropolis.compiled import C_MODULES, MODULES, extensions, source_hash, stale
from metropolis.engine.records import Plan
from metropolis.engine.state import AgentState
from metropolis.scheduling.unit import WorkUnit
from metropolis.world import World
from metropolis.world.metrics import make_metric
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap
from metropolis.world.walking import WalkingMetric

SO = EXTENSION_SUFFIXES[0]


def _package(tmp_path: Path, manifest: bool = True) -> Path:
    (tmp_path / "engine").mkdir()
    for name in ("kernel", "engine/agent"):
        (tmp_path / f"{name}.py").write_text(f"# {name}\n")
        (tmp_path / f"{name}{SO}").write_bytes(b"")
    (tmp_path / "plain.py").write_text("# never compiled\n")
    if manifest:
        hashes = {n: source_hash(tmp_path / f"{n}.py") for n in ("kernel", "engine/agent")}
        (tmp_path / "compiled.json").write_text(json.dumps(hashes))
    return tmp_path


def test_a_fresh_build_is_not_stale(tmp_path: Path) -> None:
    package = _package(tmp_path)
    assert sorted(extensions(package)) == ["engine/agent", "kernel"]
    assert stale(package) == []


def test_an_edited_source_or_a_missing_manifest_is_stale(tmp_path: Path) -> None:
    package = _package(tmp_path)
    (package / "engine" / "agent.py").write_text("# edited\n")
    assert stale(package) == ["engine/agent"]
    (package / "compiled.json").unlink()
    assert stale(package) == ["engine/agent", "kernel"]


def test_an_extension_written_in_c_is_checked_against_its_c_source(tmp_path: Path) -> None:
    package = _package(tmp_path)
    (package / "engine" / "_seeding.c").write_text("/* C */\n")
    (package / f"engine/_seeding{SO}").write_bytes(b"")
    hashes = json.loads((package / "compiled.json").read_text())
    (package / "compiled.json").write_text(
        json.dumps({**hashes, "engine/_seeding": source_hash(package / "engine" / "_seeding.c")})
    )
    assert stale(package) == []
    (package / "engine" / "_seeding.c").write_text("/* edited */\n")
    assert stale(package) == ["engine/_seeding"]


def test_no_extensions_is_pure_and_never_stale(tmp_path: Path) -> None:
    (tmp_path / "kernel.py").write_text("")
    assert extensions(tmp_path) == {} and stale(tmp_path) == []


def test_the_compiled_set_exists() -> None:
    package = Path(__file__).resolve().parents[1] / "src" / "metropolis"
    assert all((package / f"{m}.py").exists() for m in MODULES)
    assert all((package / f"{m}.c").exists() for m in C_MODULES)


def test_metropolis_pure_runs_the_sources() -> None:
    code = "import metropolis.kernel as k, metropolis.compiled as c; print(k.__file__, c.in_use(), c.describe())"
    env = {**os.environ, "METROPOLIS_PURE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    path, used, *_ = out.split()
    assert path.endswith("kernel.py") and used == "False"


def test_a_stale_build_stops_the_cli_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under the `metropolis` command a stale build exits 2 with one line; imported as a library it raises."""
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    monkeypatch.setattr(compiled, "stale", lambda: ["kernel"])
    with pytest.raises(ImportError, match="older than their sources"):
        compiled.check()
    monkeypatch.setattr(sys, "argv", ["/venv/bin/metropolis", "run"])
    with pytest.raises(SystemExit) as stopped:
        compiled.check()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "older than their sources (kernel)" in err


class Tagged(RandomWalker):
    """An interpreted subclass of a compiled agent, with an attribute of its own (as the Ray tests' agents)."""

    def __init__(self, name: str, pos: Pos, tag: str) -> None:
        super().__init__(name, pos)
        self.tag = tag


def test_what_ray_ships_survives_pickling_compiled_or_not() -> None:
    """Ray pickles the world and the agents to its workers: a walking metric (whose constructor needs the map) and
    a hop metric come back measuring the same distances, and an agent keeps its own attributes and its
    subclass's (mypyc's default pickling drops an interpreted subclass's `__dict__`: metropolis/compiled.py)."""
    walkable = np.ones((6, 8), dtype=bool)
    walkable[1:5, 3] = False  # a wall: walking is longer than straight
    tilemap = TileMap(8, 6, walkable)
    for metric in (WalkingMetric(tilemap), make_metric("hops", graph=nx.path_graph(5))):
        world = World(metric=metric, tilemap=tilemap if isinstance(metric, WalkingMetric) else None)
        back = pickle.loads(pickle.dumps(world))
        pairs = [((0, 2), (6, 2)), ((1, 1), (2, 4))] if world.tilemap else [((0, 0), (4, 0)), ((1, 0), (3, 0))]
        assert [back.metric.distance(a, b) for a, b in pairs] == [metric.distance(a, b) for a, b in pairs]
    agent = Tagged("t", (1, 2), "mine")
    agent.unique_id = 7
    back = pickle.loads(pickle.dumps(agent))
    assert (type(back), back.tag, back.name, back.start_pos, back.unique_id) == (Tagged, "mine", "t", (1, 2), 7)
    assert back.state_dict() == agent.state_dict()


def test_every_frozen_record_pickles_and_copies_compiled_or_not() -> None:
    """Compiled, mypyc copies a native class by setting its fields, which a frozen dataclass refuses: every one in
    the compiled set is reduced to its constructor by the module that defines it (`compiled.picklable`), so a
    record in an agent's private state survives speculation's and checkpoints' copies, and Ray's pickling."""
    frozen = []
    for name in MODULES:
        module = importlib.import_module(f"metropolis.{name.replace('/', '.')}")
        for cls in vars(module).values():
            params = getattr(cls, "__dataclass_params__", None)
            if isinstance(cls, type) and cls.__module__ == module.__name__ and params is not None and params.frozen:
                frozen.append(cls)
    assert len(frozen) >= 15
    if compiled.in_use():
        assert [c.__name__ for c in frozen if copyreg.dispatch_table.get(c) is None] == []
    records = [AgentState((1, 2), "x", ("e",)), Plan(3, 9), WorkUnit(4, (1, 2), (1, 2, 3))]
    for record in records:
        assert pickle.loads(pickle.dumps(record)) == record
        assert copy.deepcopy(record) == record
