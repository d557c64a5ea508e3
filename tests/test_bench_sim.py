"""`metropolis bench sim` in its fast mode: the table, the CSV and the plots; bad options are one line."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from metropolis.bench.plots import window_words
from metropolis.bench.sim import BOUNDS, HEADLINE_POLICIES, SCHEDULING_POLICIES, Setting, gpus_words
from metropolis.cli.main import app
from metropolis.paths import shared_data_dir

pytestmark = pytest.mark.skipif(
    shared_data_dir(required=False) is None, reason="needs shared/data/smallville (the real town)"
)


def test_fast_bench_writes_table_csv_and_plots(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["bench", "sim", "--setting", "quiet", "--agents", "25,50", "--hours", "0.03", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "of oracle" in result.output
    with (out / "bench_sim.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["policy"] for r in rows if r["agents"] == "25"] == [*SCHEDULING_POLICIES, *BOUNDS]
    assert {r["agents"] for r in rows} == {"25", "50"}
    assert (out / "speedup_vs_agents.png").stat().st_size > 0
    assert (out / "in_flight_quiet_50a_8g.png").stat().st_size > 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    # The headline names the fastest policy that needs no foresight, wherever it ran fastest.
    best = max((r for r in rows if r["policy"] in HEADLINE_POLICIES), key=lambda r: float(r["speedup_over_serial"]))
    assert f"{best['policy']} runs {float(best['speedup_over_serial']):.2f}x faster than serial" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--setting", "noon"], "unknown setting 'noon'"),
        (["--agents", "0"], "--agents needs integers >= 1"),
        (["--mode", "huge"], "unknown --mode 'huge'"),
        (  # the day starts at midnight: half an hour of it has no call to compare policies by
            ["--setting", "day-25", "--gpus", "1", "--hours", "0.5"],
            "day-25 25 agents 1 GPU: the 0.5 h from 00:00 make no LLM calls",
        ),
    ],
)
def test_bad_options_are_one_line(tmp_path, args, message) -> None:
    result = CliRunner().invoke(app, ["bench", "sim", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output


def test_titles_say_the_window_and_the_gpus_in_words() -> None:
    assert window_words(Setting("day-25", 0.0, 24.0, 25, 1)) == "day-25 window, 00:00-24:00 (24 h)"
    assert window_words(Setting("busy", 12.0, 0.1, 100, 8)) == "busy window, 12:00-12:06 (0.1 h)"
    assert window_words(Setting("late", 23.0, 2.0, 25, 8)) == "late window, 23:00-01:00 (2 h)"
    assert (gpus_words(1), gpus_words(8)) == ("1 GPU", "8 GPUs")
    assert Setting("day-25", 0.0, 24.0, 25, 1).label == "day-25 25 agents 1 GPU"
