"""The reports a person reads: the run's headline comparison (serial from the run's calls, lockstep re-run beside
the run), and the bench reports' tables (one per setting, within 100 columns) and plots (no policy hidden)."""

from __future__ import annotations

import dataclasses

import pytest

from metropolis.bench.plots import same_groups
from metropolis.bench.sim import BOUNDS, LIVE_POLICIES
from metropolis.cli.run_report import Alongside, rerun_seconds, serial_seconds
from metropolis.cli.run_setup import RunOptions, build_simulation
from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.paths import shared_data_dir
from metropolis.report.tables import MAX_WIDTH, MEMORY, SIM, text_width
from metropolis.runtime import VirtualRuntime
from metropolis.trace import TraceRecorder

needs_town = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="needs shared/data/smallville")


def _calls(opts: RunOptions):  # type: ignore[no-untyped-def]
    sim, _, _ = build_simulation(opts)
    recorder = TraceRecorder.for_simulation(sim)
    sim.listeners.append(recorder)
    env = Environment()
    VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset(opts.preset, gpus=opts.gpus)))).run()
    recorder.close()
    return recorder.trace().calls


@needs_town
@pytest.mark.parametrize("gpus", [1, 2])
def test_serial_from_the_calls_equals_a_serial_rerun(gpus: int) -> None:
    """The run's own calls, each on an idle cluster, give serial's time: the figure a re-run gives."""
    opts = RunOptions(hours=0.1, gpus=gpus).resolved()
    calls = _calls(opts)
    assert len(calls) > 50
    assert serial_seconds(calls, preset(opts.preset, gpus=gpus)) == pytest.approx(
        rerun_seconds(opts, "serial", lambda: None), rel=1e-9
    )


@needs_town
def test_lockstep_runs_beside_the_run_and_gives_the_rerun_figure() -> None:
    opts = RunOptions(hours=0.05).resolved()
    along = Alongside.start(opts, lambda: None)
    calls = _calls(opts)
    times = along.finish(calls)
    assert along.child is None  # joined
    assert times["lockstep"] == rerun_seconds(opts, "lockstep", lambda: None)
    assert set(times) == {"serial", "lockstep"}
    assert set(Alongside(dataclasses.replace(opts, scheduler="serial"), lambda: None).finish(calls)) == {"lockstep"}


def test_bench_tables_fit_100_columns() -> None:
    """The longest names each table can hold, and every row of a setting in one table under its title."""
    sim_rows = [
        {"setting": "busy", "agents": 1000, "gpus": 8, "mode": "large", "hours": 1.0, "policy": policy,
         "calls": 123_456, "sim_seconds": 86_399.9, "speedup_over_serial": 123.4567, "speedup_over_lockstep": 12.3456,
         "share_of_oracle": 1.2345, "mean_in_flight": 123.456, "restarts": 123_456, "wasted_share": 0.1234}
        for policy in (*LIVE_POLICIES, *BOUNDS)
    ]  # fmt: skip
    tables = SIM.split(sim_rows)
    assert len(tables) == 1 and len(tables[0][1]) == len(sim_rows)
    assert "busy: 1000 agents (one large town), 8 GPUs" in tables[0][0]
    memory_rows = [
        {"workload": "smallville", "agents": 1000, "gpus": 8, "scheduler": "metropolis", "state": "model+kv",
         "fraction": 0.25, "lora_rank": 16, "llm_calls": 99_999, "policy": policy, "sim_seconds": 12_345.6,
         "hit_rate": 0.999, "prefetch_hit_rate": 0.999, "late_loads": 123_456, "bytes_moved": 1.2e13,
         "recompute_tokens": 123_456_789}
        for policy in ("sglang", "id-nohost", "lru", "invocation-distance", "belady", "ideal")
    ]  # fmt: skip
    for _, cells in [*tables, *MEMORY.split(memory_rows)]:
        assert text_width(cells) <= MAX_WIDTH


def test_policies_with_the_same_values_share_one_named_line() -> None:
    series = {"a": [1.0, 2.0], "b": [1.0, 2.001], "c": [1.0, 3.0], "d": [1.0, 3.0]}
    assert same_groups(series) == [["a", "b"], ["c", "d"]]


@needs_town
def test_run_takes_lockstep_from_the_process_beside_it(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`metropolis run` never re-runs lockstep itself: the forked process does, while the run goes."""
    import json
    import os

    from typer.testing import CliRunner

    from metropolis.cli import run_report
    from metropolis.cli.main import app

    parent, real = os.getpid(), run_report.rerun_seconds

    def only_in_the_child(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert os.getpid() != parent, "lockstep was re-run after the run, not beside it"
        return real(*args, **kwargs)

    if run_report._cores() < 2 or "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("one core (or no fork): lockstep is re-run after the run, by design")
    monkeypatch.setattr(run_report, "rerun_seconds", only_in_the_child)
    result = CliRunner().invoke(app, ["run", "--hours", "0.05", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    alongside = json.loads((tmp_path / "r" / "report.json").read_text())["alongside"]
    monkeypatch.setattr(run_report, "rerun_seconds", real)
    opts = RunOptions(hours=0.05).resolved()
    assert alongside["lockstep"] == rerun_seconds(opts, "lockstep", lambda: None)
    assert alongside["serial"] == pytest.approx(rerun_seconds(opts, "serial", lambda: None), rel=1e-9)
