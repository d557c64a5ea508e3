"""`metropolis sweep`: the grid's runs, one table whatever the number of processes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from metropolis.cli.main import app
from metropolis.cli.sweep import points, run_point
from metropolis.paths import shared_data_dir

runner = CliRunner()
needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")


def test_points_are_the_grid_in_order() -> None:
    keys, runs = points({"hours": 0.1}, ["agents=2,3", "scheduler=lockstep,metropolis"])
    assert keys == ["agents", "scheduler"]
    assert [(r.agents, r.scheduler, r.hours) for r in runs] == [
        (2, "lockstep", 0.1), (2, "metropolis", 0.1), (3, "lockstep", 0.1), (3, "metropolis", 0.1),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("grid", "base", "message"),
    [
        (["agents"], {}, "--grid takes KEY=V1,V2"),
        (["colour=red"], {}, "'colour' is not an option a sweep can vary"),
        (["agents=0"], {}, "--grid agents must be >= 1, got '0'"),
        (["seed=1", "seed=2"], {}, "given twice"),
        (["seed=1"], {"llm": "local"}, "sweep runs in virtual time"),
    ],
)
def test_bad_grids_are_refused(grid: list[str], base: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        points(base, grid)


@needs_data
def test_a_sweep_writes_one_table_and_a_plot(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("hours = 0.05\nagents = 4\n")
    args = ["sweep", str(config), "-g", "scheduler=serial,metropolis", "-g", "seed=0,1", "--out", str(tmp_path / "s")]
    result = runner.invoke(app, [*args, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "s" / "sweep.parquet")
    assert list(table["scheduler"]) == ["serial", "serial", "metropolis", "metropolis"]
    assert list(table["seed"]) == [0, 1, 0, 1] and set(table["agent_steps"]) == {4 * 18}
    assert (tmp_path / "s" / "sweep.csv").exists() and (tmp_path / "s" / "sweep.png").exists()
    _, runs = points({"hours": 0.05, "agents": 4}, ["scheduler=metropolis", "seed=1"])
    assert run_point(runs[0])["duration"] == table["duration"].iloc[3]  # the same run alone: the same figure
