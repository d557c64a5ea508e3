"""Statistics: exact figures on tiny traces, empirical sampling with a passed-in generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metropolis.trace.daystats import day_stats, sectors
from metropolis.trace.distribution import Distribution
from metropolis.trace.movement import import_movement
from metropolis.trace.schema import TraceMeta
from metropolis.trace.stats import call_stats, summary
from metropolis.trace.store import Trace, empty_frame


def calls_trace(rows: list[tuple[str, int, int, float, str | None]]) -> Trace:
    """Calls of agent 0: (function, prompt tokens, output tokens, latency, prompt text)."""
    frame = pd.DataFrame(
        {
            "agent": 0,
            "name": "a",
            "step": range(len(rows)),
            "function": [r[0] for r in rows],
            "prompt_tokens": [r[1] for r in rows],
            "output_tokens": [r[2] for r in rows],
            "prompt_chars": None,
            "output_chars": None,
            "max_tokens": 50,
            "prompt": [r[4] for r in rows],
            "output": None,
            "start": 10.0,
            "end": [10.0 + r[3] for r in rows],
            "endpoint": None,
        }
    )
    return Trace.of(TraceMeta("test", ["a"]), calls=frame)


ROWS = [
    ("plan", 100, 10, 0.5, "Name: a"),
    ("plan", 300, 30, 1.5, "Name: a"),
    ("plan", 200, 20, 1.0, "['a', 'b']"),
    ("rate", 50, 1, 0.0, "rate this"),
]


def test_distribution_summary_and_sampling() -> None:
    d = Distribution.of([3, 1, 2, 10])
    assert (d.count, d.mean, d.min, d.max, d.quantile(0.5)) == (4, 4.0, 1.0, 10.0, 2.5)
    draws = d.sample(np.random.default_rng(7), 1000)
    assert set(draws) == {1.0, 2.0, 3.0, 10.0}
    assert (draws == d.sample(np.random.default_rng(7), 1000)).all()
    assert d.describe(0) == "mean 4 p50 2 p90 8 p99 10 max 10"
    with pytest.raises(RuntimeError, match="empty"):
        Distribution.of([]).sample(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="NaN"):
        Distribution.of([1.0, float("nan")])


def test_call_stats_per_function() -> None:
    stats = call_stats(calls_trace(ROWS))
    assert list(stats.functions) == ["plan", "rate"] and stats.mix() == {"plan": 0.75, "rate": 0.25}
    plan, rate = stats.functions["plan"], stats.functions["rate"]
    assert plan.prompt_tokens.mean == 200.0 and plan.output_tokens.quantile(0.5) == 20.0
    assert plan.latency.values.tolist() == [0.5, 1.0, 1.5] and plan.untimed == 0 and plan.argument_inputs == 1
    assert rate.untimed == 1 and rate.latency.count == 0 and plan.max_tokens == (50,)
    assert stats.latency.count == 3 and stats.prompt_tokens.mean == 162.5
    lines = stats.lines()
    assert lines[0] == "LLM calls: 4 by 1 agents over 4 steps (tokens: as recorded)"
    assert lines[-1].split()[-2:] == ["1", "untimed"] and lines[-2].endswith("1 inputs are argument lists")


def test_sampled_lengths_come_in_real_pairs() -> None:
    stats = call_stats(calls_trace(ROWS))
    pairs = stats.functions["plan"].sample_lengths(np.random.default_rng(1), 200)
    assert {tuple(p) for p in pairs} == {(100, 10), (300, 30), (200, 20)}
    calls = stats.sample(np.random.default_rng(2), 400)
    assert set(calls["function"]) == {"plan", "rate"}
    assert (calls.loc[calls["function"] == "rate", "prompt_tokens"] == 50).all()
    assert abs((calls["function"] == "plan").mean() - 0.75) < 0.07
    assert calls.equals(stats.sample(np.random.default_rng(2), 400))


def state(x: int, y: int, description: str, chat: list[list[str]] | None = None) -> dict:
    return {"movement": [x, y], "pronunciatio": "", "description": description, "chat": chat}


def test_day_stats_of_a_tiny_day(tmp_path: Path) -> None:
    """One step per hour: Ann sleeps 0-6h and from 22h, walks 7-8h, talks with Bob at 9-10h."""
    bed = "sleeping @ w:home:room:bed"
    chat = [["Ann", "hi"], ["Bob", "hello"]]
    log: dict[str, dict] = {str(s): {} for s in range(24)}
    log["0"] = {"Ann": state(0, 0, bed), "Bob": state(9, 9, "working @ w:office:desk:pc")}
    log["7"] = {"Ann": state(1, 0, "walking @ w:park:lawn:grass")}
    log["8"] = {"Ann": state(2, 0, "walking @ w:park:lawn:grass")}
    log["9"] = {
        "Ann": state(2, 0, "conversing @ <persona> Bob", chat),
        "Bob": state(9, 9, "talk @ <persona> Ann", chat),
    }
    log["11"] = {
        "Ann": state(2, 0, "reading @ w:park:lawn:bench"),
        "Bob": state(9, 9, "working @ w:office:desk:pc"),
    }
    log["22"] = {"Ann": state(0, 0, bed)}
    path = tmp_path / "master_movement.json"
    path.write_text(json.dumps(log))
    (tmp_path / "meta.json").write_text(json.dumps({"sec_per_step": 3600}))
    stats = day_stats(import_movement(path))
    ann, bob = stats.agents
    assert stats.days == 1.0 and stats.conversations == 1 and stats.conversation_steps.values.tolist() == [2.0]
    assert (ann.moving_fraction, bob.moving_fraction) == (3 / 23, 0.0)
    assert (ann.sleep_hours, ann.wake_hour, ann.bed_hour) == (9.0, 7.0, 22.0)
    assert (bob.sleep_hours, bob.wake_hour, bob.bed_hour) == (0.0, None, None)
    assert (ann.conversations, ann.conversation_steps) == (1, 2)
    assert stats.conversations_per_agent_day == 1.0 and stats.moving_fraction == 3 / 46
    hours = stats.place_hours
    assert hours.loc[9, "park"] == 0.5 and hours.loc[9, "office"] == 0.5  # talking: where they last were
    assert hours.loc[3, "home"] == 0.5 and np.allclose(hours.sum(axis=1), 1.0)
    assert any("Ann" in line and "07:00" in line and "22:00" in line for line in stats.lines())


def test_sectors_parse_addresses() -> None:
    got = sectors(pd.Series(["a @ w:s1:x:y", "b @ <persona> Bob", "idle", "c @ w:s2"]))
    assert got.tolist() == ["s1", None, None, "s2"]


def test_summary_refuses_nothing_and_reports_both_kinds() -> None:
    lines = summary(calls_trace(ROWS))
    assert lines[0].startswith("trace - from test: 1 agents, 4 calls, 0 agent-steps")
    with pytest.raises(ValueError, match="no agent-steps"):
        day_stats(Trace.of(TraceMeta("t", [])))
    with pytest.raises(ValueError, match="no LLM calls"):
        call_stats(Trace.of(TraceMeta("t", []), steps=empty_frame("steps")))
