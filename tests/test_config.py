"""Config files for `metropolis run`: written by --dump-config, read by --config, flags win, one-line errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.cli.config import RunConfig, checked, dump, load
from metropolis.cli.main import app
from metropolis.paths import shared_data_dir

runner = CliRunner()
needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")


def test_dump_then_load_gives_the_same_options(tmp_path: Path) -> None:
    config = checked({"agents": 5, "hours": 0.5, "scheduler": "lockstep", "genagent": ("max_retries=2",)})
    path = dump(config, tmp_path / "run.toml")
    raw = tomllib.loads(path.read_text())
    assert raw["genagent"] == {"max_retries": 2} and "out_dir" not in raw
    assert RunConfig.model_validate(load(path)) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hours = -1", "run.toml: hours must be > 0, got -1"),
        ("start_hour = 24", "run.toml: start_hour must be < 24, got 24"),
        ("hourz = 1", "run.toml: hourz is not a run option; the options are agents, hours"),
        ('scheduler = "x"', "run.toml: unknown scheduler 'x'; choose one of: serial"),
        ('runtime = "gpu"', "run.toml: runtime input should be 'auto', 'virtual', 'asyncio' or 'ray', got 'gpu'"),
        ("hours = [", "not TOML"),
    ],
)
def test_a_bad_key_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text + "\n")
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("metropolis: error: ") and message in last, last


def test_command_line_errors_name_the_flag() -> None:
    with pytest.raises(ValueError, match=r"^--start-hour must be >= 0, got -1"):
        checked({"start_hour": -1})


@needs_data
def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('agents = 4\nhours = 0.05\nscheduler = "lockstep"\n')
    written = tmp_path / "out.toml"
    result = runner.invoke(app, ["run", "--config", str(path), "-s", "serial", "--dump-config", str(written)])
    assert result.exit_code == 0, result.output
    raw = tomllib.loads(written.read_text())
    assert (raw["agents"], raw["hours"], raw["scheduler"]) == (4, 0.05, "serial")
    result = runner.invoke(app, ["run", "--config", str(written), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "scheduler        serial" in result.output and "agent-steps      72" in result.output


def test_help_lists_the_genagent_keys_and_priced_models() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "400"})
    assert "max_retries" in result.output and "gpt-4o-mini" in result.output and "--dump-config" in result.output


def test_the_demo_defaults_and_what_a_replay_takes_from_its_run(tmp_path: Path) -> None:
    demo = tmp_path / "demo.toml"
    assert runner.invoke(app, ["run", "--llm", "local", "--dump-config", str(demo)]).exit_code == 0
    raw = tomllib.loads(demo.read_text())
    assert (raw["hours"], round(raw["start_hour"], 3), raw["genagent"]) == (0.15, 6.967, {"pick_personas": "household"})
    recorded = tmp_path / "run"
    recorded.mkdir()
    options = {"agents": 2, "start_hour": 7.5, "hours": 0.1, "genagent": ["max_retries=2"], "scheduler": "lockstep"}
    (recorded / "meta.json").write_text(json.dumps({"options": options}))
    replay = tmp_path / "replay.toml"
    args = ["run", "--replay", str(recorded), "--hours", "0.05", "--dump-config", str(replay)]
    assert runner.invoke(app, args).exit_code == 0
    raw = tomllib.loads(replay.read_text())
    assert (raw["agents"], raw["start_hour"], raw["hours"], raw["genagent"]) == (2, 7.5, 0.05, {"max_retries": 2})
    assert raw["scheduler"] == "metropolis"  # the policy is the replay's own choice


@needs_data
def test_a_household_is_the_personas_who_start_closest_together() -> None:
    from metropolis.agents.genagent import household
    from metropolis.world.smallville import load_smallville

    town = load_smallville()
    assert [p.name for p in household(list(town.personas), 3)] == ["Mei Lin", "John Lin", "Eddy Lin"]
