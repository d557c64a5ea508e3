"""Where the person enters Smallville: by the Lin family by default, or a walkable tile given as X,Y."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from metropolis.agents.player_spawn import HOUSE, default_spawn, parse_at, spawn_point
from metropolis.cli.main import app
from metropolis.paths import shared_data_dir
from metropolis.world.smallville import Town, load_smallville

pytestmark = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data is absent")
FAMILY = ("John Lin", "Mei Lin", "Eddy Lin")


@pytest.fixture(scope="module")
def town() -> Town:
    return load_smallville()


def test_the_default_is_in_the_lins_house_in_view_of_the_whole_family(town: Town) -> None:
    pos = default_spawn(town)
    place = town.place_of(pos)
    assert place is not None and place.sector == HOUSE
    assert town.tilemap.is_walkable(pos) and town.reachable(pos)
    distance = town.world.metric.distance
    near = [p.name for p in town.personas if distance(p.spawn, pos) <= town.world.perception_radius]
    assert set(FAMILY) <= set(near), near


def test_a_tile_given_is_checked(town: Town) -> None:
    assert spawn_point(town, "16,18") == (16, 18) == town.persona("Latoya Williams").spawn
    assert spawn_point(town) == default_spawn(town)
    with pytest.raises(ValueError, match=r"^--player-at 0,0: not a tile the residents can walk to"):
        spawn_point(town, "0,0")
    with pytest.raises(ValueError, match=r"^--player-at 500,5: off the map \(140x100 tiles\)"):
        spawn_point(town, "500,5")
    for text in ("16", "16,18,2", "x,y", ""):
        if text:
            with pytest.raises(ValueError, match="takes a tile X,Y"):
                parse_at(text)


def test_run_puts_the_player_by_the_lins_or_where_asked(tmp_path: Path, town: Town) -> None:
    runner = CliRunner()
    args = ["run", "-n", "17", "--hours", "0.01", "--no-compare", "--player", "Visitor"]
    for at, folder in ((None, tmp_path / "default"), ("16,18", tmp_path / "asked")):
        result = runner.invoke(app, [*args, *(["--player-at", at] if at else []), "--out", str(folder)])
        assert result.exit_code == 0, result.output
        steps = pd.read_parquet(folder / "trace" / "steps.parquet")
        first = steps[(steps.name == "Visitor") & (steps.step == 0)].iloc[0]
        assert (first.x, first.y) == (default_spawn(town) if at is None else (16, 18))
    bad = runner.invoke(app, [*args, "--player-at", "0,0", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--player-at 0,0: not a tile the residents can walk to" in bad.output
    assert not (tmp_path / "bad").exists()
