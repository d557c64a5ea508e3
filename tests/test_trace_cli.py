"""`metropolis trace ...` through Typer's test runner: imports, stats, show, bad files as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from metropolis.cli.trace import app

RUNNER = CliRunner()

MOVES = {
    "0": {
        "Ann": {
            "movement": [0, 0],
            "pronunciatio": "",
            "description": "sleeping @ w:home:room:bed",
            "chat": None,
        }
    },
    "1": {
        "Ann": {
            "movement": [1, 0],
            "pronunciatio": "",
            "description": "walking @ w:park:lawn:grass",
            "chat": None,
        }
    },
}
CALLS = {
    "run": {"first_name": "Peter"},
    "Ann:0:run_gpt_prompt_daily_plan_0:5.0": {
        "function_name": "run_gpt_prompt_daily_plan_0",
        "persona_name": "Ann",
        "step": "0",
        "start_time": "5.0",
        "end_time": "5.5",
        "input": "plan the day",
        "output": "wake up",
        "max_token": "500",
        "model_name": "m",
    },
}


def write(folder: Path, name: str, data: object) -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_import_movement_then_show_and_stats(tmp_path: Path) -> None:
    src = write(tmp_path, "master_movement.json", MOVES)
    out = tmp_path / "mv"
    result = RUNNER.invoke(app, ["import-movement", str(src), "--out", str(out), "--radius", "8"])
    assert result.exit_code == 0, result.output
    assert result.output == f"2 agent-steps of 1 agents over 2 steps, 0 conversations -> {out}\n"
    assert pd.read_parquet(out / "steps.parquet")["x"].tolist() == [0, 1]
    shown = RUNNER.invoke(app, ["show", str(out), "--rows", "1"])
    assert shown.exit_code == 0 and '"radius": 8.0' in shown.output and "steps: 2 rows" in shown.output
    stats = RUNNER.invoke(app, ["stats", str(out)])
    assert stats.exit_code == 0 and "moving 100.0% of steps" in stats.output
    raw = RUNNER.invoke(app, ["stats", str(src)])  # a raw log is imported on the fly
    assert raw.exit_code == 0 and raw.output == stats.output


def test_import_genagents_then_stats(tmp_path: Path) -> None:
    src = write(tmp_path, "calls.json", CALLS)
    out = tmp_path / "ga"
    result = RUNNER.invoke(app, ["import-genagents", str(src), "--out", str(out), "--tokenizer", "chars/4"])
    assert result.exit_code == 0, result.output
    assert result.output == f"1 calls of 1 agents -> {out} (tokens: chars/4; skipped 1 non-call keys: run)\n"
    assert pd.read_parquet(out / "calls.parquet")["function"].tolist() == ["run_gpt_prompt_daily_plan"]
    stats = RUNNER.invoke(app, ["stats", str(out)])
    assert stats.exit_code == 0 and "run_gpt_prompt_daily_plan" in stats.output


def one_line_error(args: list[str]) -> str:
    result = RUNNER.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("metropolis: error: "), result.stderr
    return lines[0]


def test_bad_files_give_one_line_and_exit_code_2(tmp_path: Path) -> None:
    moves = json.dumps(MOVES)
    cut = write(tmp_path, "cut.json", moves[: moves.index('"1"') + 20])
    assert "step '1' is malformed or truncated" in one_line_error(["import-movement", str(cut), "-o", str(tmp_path)])
    bad = dict(CALLS)
    bad["Ann:0:run_gpt_prompt_daily_plan_0:5.0"] = {
        **CALLS["Ann:0:run_gpt_prompt_daily_plan_0:5.0"],
        "step": "x",
    }
    path = write(tmp_path, "bad.json", bad)
    assert one_line_error(["import-genagents", str(path), "-o", str(tmp_path / "o")]).endswith(
        "record 'Ann:0:run_gpt_prompt_daily_plan_0:5.0': step 'x' is not an integer"
    )
    assert "unknown token counter 'bpe'" in one_line_error(
        ["import-genagents", str(path), "-o", str(tmp_path / "o"), "--tokenizer", "bpe"]
    )
    assert one_line_error(["stats", str(tmp_path / "missing")]).endswith(
        f"no trace folder or export file at {tmp_path / 'missing'}"
    )
    assert "meta.json is missing" in one_line_error(["show", str(tmp_path)])
    other = write(tmp_path, "other.json", {"hello": 1})
    assert "neither a Generative Agents call export nor a movement log" in one_line_error(["stats", str(other)])
