"""The end-to-end rows of `metropolis bench scheduler`: tiny versions, checked by their counts (not their speed)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from metropolis.bench.endtoend import busy_row, day_row, end_to_end_names
from metropolis.cli.main import app
from metropolis.paths import shared_data_dir

needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")


@needs_data
def test_the_day_row_runs_what_metropolis_run_runs() -> None:
    # `metropolis run` (25 walkers, 1 h, 1 GPU) reports 9000 agent-steps, 2830 calls and 1073.95 s (members run
    # together; 1103.01 s with `--members serial`).
    row = day_row(hours=1, gpus=1)
    assert (row.agent_steps, row.llm_calls, round(row.virtual_seconds, 2)) == (9000, 2830, 1073.95)
    assert row.wall_seconds > 0 and row.calls_per_second == row.llm_calls / row.wall_seconds
    assert row.cpu_seconds > 0 and row.calls_per_cpu_second == row.llm_calls / row.cpu_seconds
    assert row.build.startswith(("compiled (", "pure Python"))  # the bench says which code ran


@needs_data
def test_the_busy_row_replays_the_generated_hour() -> None:
    row = busy_row(agents=30, hours=0.02, gpus=2)
    assert row.agent_steps == 30 * 7  # 0.02 h is 7 steps of 10 s
    assert row.llm_calls > 0 and row.virtual_seconds > 0


def test_rows_are_chosen_by_name() -> None:
    assert end_to_end_names("day,busy") == ["day", "busy"]
    assert end_to_end_names("none") == []
    with pytest.raises(ValueError, match="unknown end-to-end row 'week'; choose one of: day, busy"):
        end_to_end_names("day,week")


def test_an_unknown_row_is_one_line_and_exit_code_2() -> None:
    result = CliRunner().invoke(app, ["bench", "scheduler", "--end-to-end", "week"])
    assert result.exit_code == 2
    assert "unknown end-to-end row 'week'" in result.output


def test_the_micro_rows_alone() -> None:
    result = CliRunner().invoke(
        app, ["bench", "scheduler", "--agents", "20", "--agent-steps", "200", "--end-to-end", "none"]
    )
    assert result.exit_code == 0, result.output
    assert "Scheduler micro-benchmark" in result.output and "End to end" not in result.output
