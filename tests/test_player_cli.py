"""`metropolis run --player` with a script, its recorded inputs replayed; `simulate(..., player=...)`; the bench."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from metropolis import simulate
from metropolis.agents import RandomWalker
from metropolis.agents.player import PlayerAgent
from metropolis.agents.player_input import Move, PlayerInput, Say
from metropolis.bench.interactive import bench_interactive
from metropolis.cli.main import app
from metropolis.world.smallville import load_smallville

runner = CliRunner()
SCRIPT = '{"step": 0, "say": "Good morning!"}\n{"step": 1, "move": [0, 1]}\n{"step": 3, "say": "Busy day?"}\n'


def player_rows(folder: Path) -> pd.DataFrame:
    steps = pd.read_parquet(folder / "trace" / "steps.parquet")
    return steps[steps.name == "Visitor"].sort_values("step").reset_index(drop=True)


def test_run_with_a_player_script_records_its_inputs_and_replays_them(tmp_path: Path) -> None:
    script = tmp_path / "player.jsonl"
    script.write_text(SCRIPT, encoding="utf-8")
    first = tmp_path / "first"
    # among the six walkers: where the first of them wakes (the player's default is the Lins' house)
    args = ["run", "-n", "6", "--hours", "0.02", "--no-compare", "--player", "Visitor", "--player-at", "16,18"]
    result = runner.invoke(app, [*args, "--player-script", str(script), "--out", str(first)])
    assert result.exit_code == 0, result.output
    assert "and Visitor (player)" in result.output
    recorded = (first / "trace" / "player.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(recorded) == 3 and '"say": "Good morning!"' in recorded[0]
    rows = player_rows(first)
    assert rows.loc[0, "action"] == "talking" and any("Visitor to" in e for e in rows.loc[0, "events"])
    again = tmp_path / "again"
    replay = [*args, "--player-script", str(first), "-s", "lockstep", "--out", str(again)]
    assert runner.invoke(app, replay).exit_code == 0
    for column in ("x", "y", "action"):
        assert player_rows(again)[column].tolist() == rows[column].tolist()


def test_run_refuses_a_wall_clock_player_in_virtual_time(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--player", "Visitor", "--player-pace", "clock", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs a real-time run" in result.output
    result = runner.invoke(app, ["run", "--player-script", "x.jsonl", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "needs --player" in result.output


def test_simulate_takes_a_player_and_gives_back_its_inputs() -> None:
    walkers = [RandomWalker(f"w{i}", (4 + i, 4)) for i in range(4)]
    player = PlayerAgent("you", (5, 5), PlayerInput({0: (Say("hi"),), 2: (Move(1, 0),)}))
    result = simulate(walkers, "open", steps=5, player=player)
    assert result.player_inputs == {0: (Say("hi"),), 2: (Move(1, 0),)}
    assert player.talked and (result.steps.name == "you").sum() == 5


def test_bench_interactive_meets_its_goals_on_a_short_window() -> None:
    (setting,) = bench_interactive(load_smallville(), ((25, 1),), hours=0.05, talk_every=3)
    ours, base = setting.rows["player"], setting.rows["no priority"]
    assert len(ours.replies) == 6 and ours.background_calls == setting.rows["no player"].background_calls
    assert ours.p95_ratio() is not None and ours.p95_ratio() <= 1.5  # type: ignore[operator]
    assert (base.percentile(95) or 0) >= (ours.percentile(95) or 0)
    assert setting.throughput_share("lockstep") < setting.throughput_share("player")


def test_run_with_a_player_and_serving_memory_keeps_the_horizon_on_the_gpu(tmp_path: Path) -> None:
    args = ["run", "-n", "6", "--hours", "0.02", "--no-compare", "--player", "Visitor"]
    result = runner.invoke(app, [*args, "--memory", "invocation-distance", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "hit rate" in result.output
