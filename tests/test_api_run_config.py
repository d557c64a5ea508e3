"""`metropolis.simulate(RunConfig(...))`: what `metropolis run` does with the same options, the player and the
store included; bad options are one line naming the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import metropolis
from metropolis import RunConfig
from metropolis.agents.player_input import Move, Say
from metropolis.cli.main import app
from metropolis.paths import shared_data_dir

needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data is absent")
SCRIPT = '{"step": 0, "say": "Good morning!"}\n{"step": 1, "move": [0, 1]}\n{"step": 3, "say": "Busy day?"}\n'


def player_rows(folder: Path) -> pd.DataFrame:
    steps = pd.read_parquet(folder / "trace" / "steps.parquet")
    rows = steps[steps.name == "Visitor"].sort_values("step").reset_index(drop=True)
    return rows[["step", "x", "y", "action"]]


@needs_data
def test_a_run_config_with_a_player_runs_what_the_command_line_runs(tmp_path: Path) -> None:
    script = tmp_path / "walk.jsonl"
    script.write_text(SCRIPT, encoding="utf-8")
    options = {"agents": 17, "hours": 0.02, "player": "Visitor", "player_script": str(script), "store": "sqlite"}
    result = metropolis.simulate(RunConfig(**options, out_dir=tmp_path / "api"))
    assert result.folder == tmp_path / "api" and (result.folder / "trace" / "player.jsonl").is_file()
    assert result.player_inputs == {0: (Say("Good morning!"),), 1: (Move(0, 1),), 3: (Say("Busy day?"),)}
    assert result.report.agent_steps == 18 * 7 and (result.steps.name == "Visitor").sum() == 7
    first = result.steps[(result.steps.name == "Visitor") & (result.steps.step == 0)].iloc[0]
    assert any(e.startswith("Visitor to ") and "Lin" in e for e in first.events)  # the Lins are in the house
    cli = ["run", "-n", "17", "--hours", "0.02", "--no-compare", "--player", "Visitor", "--player-script", str(script)]
    assert runner_ok([*cli, "--out", str(tmp_path / "cli")])
    pd.testing.assert_frame_equal(player_rows(tmp_path / "api"), player_rows(tmp_path / "cli"))


@needs_data
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
def test_a_run_config_keeps_its_journal_in_the_store_it_names(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    result = metropolis.simulate(RunConfig(agents=3, hours=0.01, store="redis", out_dir=tmp_path / "run"))
    assert (tmp_path / "run" / "redis").is_dir() and result.report.agent_steps == 3 * 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"player_seconds": 0}, "RunConfig: player_seconds must be > 0, got 0"),
        ({"player_pace": "keys"}, "unknown player pacing 'keys'; choose one of: auto, script, clock, input"),
        ({"player_at": "3;4"}, "--player-at takes a tile X,Y"),
        ({"store": "mongo"}, "unknown --store 'mongo'"),
        ({"hourz": 1}, "RunConfig: hourz is not a run option"),
    ],
)
def test_bad_options_are_one_line(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        RunConfig(**options)  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


@needs_data
def test_a_run_config_is_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--player-at needs --player NAME"):
        metropolis.simulate(RunConfig(player_at="70,45", out_dir=tmp_path / "a"))
    with pytest.raises(ValueError, match=r"--player-at 0,0: not a tile the residents can walk to"):
        metropolis.simulate(RunConfig(player="Visitor", player_at="0,0", hours=0.01, out_dir=tmp_path / "b"))
    with pytest.raises(ValueError, match="--player takes its commands in this process: use --runtime asyncio"):
        metropolis.simulate(RunConfig(player="Visitor", runtime="ray", out_dir=tmp_path / "c"))
    with pytest.raises(TypeError, match="takes every option from the config"):
        metropolis.simulate(RunConfig(), hours=1.0)
    assert not any((tmp_path / name).exists() for name in "abc")


def runner_ok(args: list[str]) -> bool:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return True
