"""The command line as a user meets it: the zero-config run, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.cli.main import app
from metropolis.paths import shared_data_dir

runner = CliRunner()
needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")


@needs_data
def test_run_writes_a_report_and_a_trace(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--hours", "0.05", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["agents"] == 25 and report["steps"] == 18 and report["agent_steps"] == 25 * 18
    assert report["scheduler"] == "metropolis" and report["runtime"] == "virtual"
    assert (tmp_path / "trace" / "steps.parquet").is_file()
    assert "avg parallelism" in result.output


@needs_data
def test_schedulers_agree_from_the_command_line(tmp_path: Path) -> None:
    import pandas as pd

    frames = []
    for name in ("serial", "metropolis"):
        out = tmp_path / name
        assert runner.invoke(app, ["run", "-n", "8", "--hours", "0.1", "-s", name, "--out", str(out)]).exit_code == 0
        steps = pd.read_parquet(out / "trace" / "steps.parquet")
        frames.append(
            steps.sort_values(["agent", "step"])[["agent", "step", "x", "y", "action"]].reset_index(drop=True)
        )
    pd.testing.assert_frame_equal(frames[0], frames[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--scheduler", "nope"], "unknown scheduler 'nope'; choose one of: serial, lockstep, metropolis"),
        (["run", "--hours", "0"], "--hours must be > 0"),
        (["run", "--runtime", "virtual", "--llm", "local"], "use --runtime asyncio"),
        (["run", "--llm", "ftp://x"], "--llm must be 'local' or an http(s) URL"),
        (["bench", "scheduler", "--agents", "0"], "must be >= 1"),
        (["calibrate", "--concurrency", "2"], "needs single requests"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("metropolis: error: ") and message in lines[-1]
    assert "Traceback" not in result.output


@needs_data
def test_a_generative_run_replays_to_the_same_story_under_every_scheduler(tmp_path: Path) -> None:
    base = ["run", "--agent", "generative", "-n", "2", "--hours", "0.15", "--start-hour", "7.9"]
    recorded = tmp_path / "recorded"
    first = runner.invoke(app, [*base, "-s", "metropolis", "--out", str(recorded)])
    assert first.exit_code == 0, first.output
    story = (recorded / "timeline.md").read_text()
    assert "## " in story
    for name in ("serial", "lockstep", "metropolis"):
        out = tmp_path / name
        result = runner.invoke(app, [*base, "-s", name, "--replay", str(recorded), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert (out / "timeline.md").read_text() == story, name


@needs_data
def test_price_gives_a_cost_in_virtual_time(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--hours", "0.05", "--price", "0.15,0.6", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    books = json.loads((tmp_path / "accounting.json").read_text())
    total = books[-1]
    assert total["agent"] == "*total*" and total["calls"] == report["llm_calls"] > 0
    assert (total["prompt_tokens"], total["completion_tokens"]) == (
        report["prompt_tokens"],
        report["completion_tokens"],
    )
    cost = (report["prompt_tokens"] * 0.15 + report["completion_tokens"] * 0.6) / 1e6
    assert total["cost_usd"] == pytest.approx(cost)
    assert f"estimated cost   ${cost:.4f}" in result.output


@needs_data
def test_run_models_serving_memory_and_prints_hit_rates(tmp_path: Path) -> None:
    """`--memory` puts every agent's KV prefix in a GPU tier of `--fraction` and a host tier: a hit skips the
    prefix's prefill, so the same simulation finishes sooner than without any prefix cache, and its stats add up."""
    plain = runner.invoke(app, ["run", "--hours", "0.05", "--out", str(tmp_path / "plain")])
    cached = runner.invoke(
        app,
        [
            "run",
            "--hours",
            "0.05",
            "--memory",
            "invocation-distance",
            "--fraction",
            "0.5",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert plain.exit_code == 0 and cached.exit_code == 0, cached.output
    stats = json.loads((tmp_path / "m" / "memory.json").read_text())
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    base = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert stats["admissions"] == report["llm_calls"] == base["llm_calls"] > 0
    assert 0 < stats["hits"] < stats["admissions"] and stats["prefetch_hits"] <= stats["hits"]
    assert report["duration"] < base["duration"]
    assert f"hit rate       {stats['hits'] / stats['admissions']:.1%}" in cached.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--memory", "fifo"], "unknown --memory policy 'fifo'; choose one of: lru, invocation-distance"),
        (["run", "--memory", "lru", "--fraction", "0"], "--fraction"),
        (["run", "--memory", "lru", "--runtime", "asyncio"], "--memory models serving memory in virtual time"),
    ],
)
def test_memory_options_are_checked_before_the_run(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "r").exists()
