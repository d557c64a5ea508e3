"""Reporters give the same frames under every scheduling policy, however steps commit."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pandas as pd
import pytest

from metropolis.agents import WalkerConfig
from metropolis.engine import StepRecord
from metropolis.engine.collect import DataCollector
from tests.scenarios import run_shuffled, walker_sim


def crowded(records: Sequence[StepRecord]) -> int:
    return sum(bool(r.observed) for r in records)


def frames(scheduler: str, shuffle_seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = walker_sim(12, scheduler, steps=24, R=3.0, config=WalkerConfig(call_prob=0.0))
    collector = DataCollector(
        sim.agents,
        model_reporters={"crowded": crowded, "x_sum": lambda rs: sum(r.state.pos[0] for r in rs)},
        agent_reporters={"pos": "pos", "seen": lambda record, agent: len(record.observed), "name_len": "name"},
        every=4,
    )
    sim.listeners.append(collector)
    run_shuffled(sim, random.Random(shuffle_seed))
    return collector.model_frame(), collector.agent_frame()


def test_frames_are_identical_under_every_policy() -> None:
    model, agents = frames("serial", 0)
    assert list(model["step"]) == [0, 4, 8, 12, 16, 20]
    assert len(agents) == 6 * 12 and list(agents.columns) == ["step", "agent", "name", "pos", "seen", "name_len"]
    for scheduler in ("lockstep", "metropolis"):
        for shuffle_seed in (1, 2, 3):
            other_model, other_agents = frames(scheduler, shuffle_seed)
            pd.testing.assert_frame_equal(model, other_model)
            pd.testing.assert_frame_equal(agents, other_agents)


def test_a_model_row_waits_for_every_agent() -> None:
    sim = walker_sim(3, "metropolis", steps=2)
    collector = DataCollector(sim.agents, model_reporters={"n": len})
    state = sim.store.at(0, 0)
    record = StepRecord(0, "a0", 0, state, (), (), 0, 0.0, 0.0)
    collector.on_step(record)
    assert collector.model_frame().empty
    for agent in (2, 1):
        collector.on_step(StepRecord(agent, f"a{agent}", 0, state, (), (), 0, 0.0, 0.0))
    assert collector.model_frame().to_dict("records") == [{"step": 0, "n": 3}]


def test_bad_reporters_say_what_to_do(tmp_path) -> None:
    sim = walker_sim(2, "serial", steps=1)
    with pytest.raises(ValueError, match="N >= 1"):
        DataCollector(sim.agents, every=0)
    collector = DataCollector(sim.agents, agent_reporters={"x": "wealth"})
    record = StepRecord(0, "a0", 0, sim.store.at(0, 0), (), (), 0, 0.0, 0.0)
    with pytest.raises(AttributeError, match="no such attribute"):
        collector.on_step(record)


def test_frames_are_written_as_parquet(tmp_path) -> None:
    _, agents = frames("metropolis", 0)
    sim = walker_sim(12, "serial", steps=24, R=3.0, config=WalkerConfig(call_prob=0.0))
    collector = DataCollector(sim.agents, {"crowded": crowded}, {"pos": "pos"}, every=4)
    sim.listeners.append(collector)
    run_shuffled(sim, random.Random(0))
    written = collector.write(tmp_path)
    assert [p.name for p in written] == ["model.parquet", "agents.parquet"]
    back = pd.read_parquet(tmp_path / "agents.parquet")
    assert [tuple(p) for p in back["pos"]] == list(agents["pos"])
