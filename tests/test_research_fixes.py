"""Small defects found on the researcher's way: radius of a movement import, trace stats of a run folder and of a
short trace, conversations that start beyond R, no warnings left by a failed run."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import metropolis
from metropolis.cli.main import app
from metropolis.engine import Agent, StepContext
from metropolis.paths import shared_data_dir
from metropolis.trace import Trace
from metropolis.trace.schema import TraceMeta
from metropolis.trace.stats import conversation_reach
from metropolis.workloads.tracing import from_trace, recorded_radius

runner = CliRunner()
needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")


def test_a_movement_import_replays_at_the_radius_it_was_made_with() -> None:
    assert recorded_radius({"radius": 8.0}) == 8.0
    assert recorded_radius({"perception_radius": 6, "radius": 8.0}) == 6.0
    assert recorded_radius({}) == 4.0
    meta = TraceMeta(source="movement", agent_names=["a", "b"], extra={"radius": 8.0})
    steps = pd.DataFrame(
        {"agent": [0, 1], "step": [0, 0], "name": ["a", "b"], "x": [0, 9], "y": [0, 0], "action": ["idle"] * 2,
         "observed": [[], []], "partners": [[], []], "llm_calls": [0, 0], "start": [0.0] * 2, "end": [0.0] * 2}
    )  # fmt: skip
    trace = Trace.of(meta, steps=steps)
    assert from_trace(trace).perception_radius == 8.0
    assert from_trace(trace, 5.0).perception_radius == 5.0


def test_conversation_reach_reads_where_they_stood_when_it_started() -> None:
    meta = TraceMeta(source="movement", agent_names=["a", "b"])
    steps = pd.DataFrame({"agent": [0, 1, 0, 1], "step": [0, 0, 1, 1], "x": [0, 6, 0, 3], "y": [0, 8, 0, 4]})
    conv = pd.DataFrame({"start": [1], "participants": [[0, 1]]})
    assert conversation_reach(Trace(meta, pd.DataFrame(), steps, conv)) == 10.0


@needs_data
def test_trace_stats_takes_a_run_folder_and_says_it_scales_a_short_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", "-n", "3", "--hours", "0.1", "--out", str(run)]).exit_code == 0
    result = runner.invoke(app, ["trace", "stats", str(run)])
    assert result.exit_code == 0, result.output
    assert "note: this trace covers 0.10 simulated hours" in result.output
    assert runner.invoke(app, ["trace", "show", str(run)]).exit_code == 0


@needs_data
def test_import_movement_says_how_far_apart_conversations_start(tmp_path: Path) -> None:
    result = runner.invoke(app, ["trace", "import-movement", "--out", str(tmp_path / "day")])
    assert result.exit_code == 0, result.output
    assert "conversations here start up to 11.3 tiles apart, beyond R = 4" in result.output
    assert "--radius 11.4 or more" in result.output


class Failing(Agent):
    async def step(self, ctx: StepContext) -> None:
        await ctx.llm("think", "hi", max_tokens=4)
        if ctx.step == 2 and self.name == "f1":
            raise ValueError("boom")


def test_a_failed_run_leaves_no_coroutine_unawaited() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="step 2 of f1 failed: ValueError: boom"):
            metropolis.simulate([Failing(f"f{i}", (8 * i, 0)) for i in range(6)], steps=6)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_the_oracle_refuses_live_agents_that_observe() -> None:
    from metropolis.agents import RandomWalker, WalkerConfig
    from metropolis.scheduling import DependencyGraph, OracleScheduler

    agents = [RandomWalker(f"w{i}", (i, 0), WalkerConfig(call_prob=0.0)) for i in range(3)]
    graph = DependencyGraph.from_steps([], 3, 2)
    with pytest.raises(RuntimeError, match="live agents that observe need serial, lockstep or metropolis"):
        metropolis.simulate(agents, llm=None, steps=2, scheduler=lambda w, t: OracleScheduler(w, t, graph))
