"""The recorder writes exactly what the engine reported: run a small town, read the trace back with pandas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from metropolis.agents.randomwalk import RandomWalker, WalkerConfig
from metropolis.engine.records import CallRecord, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.engine.state import AgentState
from metropolis.kernel import Environment
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.runtime.virtual import VirtualRuntime
from metropolis.trace import Trace, TraceRecorder
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World


class FixedLatency:
    """Answers every call after 0.5 virtual seconds with the sizes the request dictates."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    async def complete(self, request: LLMRequest) -> LLMResponse:
        start = self.env.now
        await self.env.timeout(0.5)
        return LLMResponse(
            f"ok {request.agent}",
            request.prompt_tokens or 1,
            request.output_tokens or 1,
            start,
            self.env.now,
            "fake",
        )


class Log:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.calls: list[CallRecord] = []

    def on_step(self, record: StepRecord) -> None:
        self.steps.append(record)

    def on_call(self, record: CallRecord) -> None:
        self.calls.append(record)


def run_town(recorder: TraceRecorder | None, steps: int = 12, record_text: bool = True) -> tuple[Simulation, Log]:
    env = Environment()
    world = World(tilemap=TileMap.open(6, 6), name="open6")
    config = WalkerConfig(call_prob=0.5, talk_prob=0.6, prompt_tokens=100, output_tokens=7)
    agents = [RandomWalker(f"w{i}", (i, i % 2), config) for i in range(4)]
    sim = Simulation(world, agents, until=steps, scheduler="lockstep", seed=3, record_text=record_text)
    log = Log()
    sim.listeners.append(log)
    if recorder is None:
        recorder = TraceRecorder.for_simulation(sim)
    sim.listeners.append(recorder)
    VirtualRuntime(sim, env, FixedLatency(env)).run()
    return sim, log


def step_rows(records: list[StepRecord]) -> list[tuple[object, ...]]:
    return [
        (
            r.agent,
            r.name,
            r.step,
            r.state.pos[0],
            r.state.pos[1],
            r.state.action,
            list(r.state.events),
            list(r.observed),
            list(r.partners),
            r.llm_calls,
            r.start,
            r.end,
        )
        for r in records
    ]


def call_rows(records: list[CallRecord]) -> list[tuple[object, ...]]:
    return [
        (
            r.agent,
            r.name,
            r.step,
            r.function,
            r.prompt_tokens,
            r.output_tokens,
            r.prompt,
            r.output,
            r.start,
            r.end,
            r.endpoint,
        )
        for r in records
    ]


def frame_step_rows(df: pd.DataFrame) -> list[tuple[object, ...]]:
    cols = [
        "agent",
        "name",
        "step",
        "x",
        "y",
        "action",
        "events",
        "observed",
        "partners",
        "llm_calls",
        "start",
        "end",
    ]
    return [
        tuple(list(v) if hasattr(v, "__len__") and not isinstance(v, str) else v for v in row)
        for row in df[cols].itertuples(index=False, name=None)
    ]


def frame_call_rows(df: pd.DataFrame) -> list[tuple[object, ...]]:
    cols = [
        "agent",
        "name",
        "step",
        "function",
        "prompt_tokens",
        "output_tokens",
        "prompt",
        "output",
        "start",
        "end",
        "endpoint",
    ]
    return list(df[cols].itertuples(index=False, name=None))


def test_recorded_rows_equal_the_engine_records(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    recorder = TraceRecorder(folder, chunk_rows=5)  # small chunks: several row groups per table
    _, log = run_town(recorder)
    recorder.close()
    assert len(log.steps) == 12 * 4 and log.calls, "the scenario must produce steps and calls"
    assert any(r.partners for r in log.steps) and any(r.observed for r in log.steps)
    steps = pd.read_parquet(folder / "steps.parquet")
    calls = pd.read_parquet(folder / "calls.parquet")
    assert frame_step_rows(steps) == step_rows(log.steps)
    assert frame_call_rows(calls) == call_rows(log.calls)
    assert calls["prompt_chars"].tolist() == [len(r.prompt or "") for r in log.calls]
    assert calls["max_tokens"].isna().all()
    assert pq.ParquetFile(folder / "steps.parquet").num_row_groups == 48 // 5 + 1
    assert recorder.trace().meta.agent_names == ["w0", "w1", "w2", "w3"]  # read back from the folder


def test_in_memory_recorder_matches_a_written_one(tmp_path: Path) -> None:
    sim, log = run_town(None, steps=6, record_text=False)
    recorder = next(x for x in sim.listeners if isinstance(x, TraceRecorder))
    with pytest.raises(RuntimeError, match="close the recorder"):
        recorder.trace()
    recorder.close()
    trace = recorder.trace()
    assert trace.meta.scheduler == "lockstep" and trace.meta.seed == 3 and trace.meta.world == "open6"
    assert frame_step_rows(trace.steps) == step_rows(log.steps)
    assert trace.calls["prompt"].isna().all() and trace.calls["prompt_chars"].isna().all()
    back = Trace.read(trace.write(tmp_path / "t"))
    assert frame_step_rows(back.steps) == step_rows(log.steps)
    assert frame_call_rows(back.calls) == frame_call_rows(trace.calls)
    assert len(back.calls_of("w1")) == sum(1 for r in log.calls if r.agent == 1)
    assert back.positions(2).tolist() == [list(r.state.pos) for r in log.steps if r.agent == 2]


def test_closed_recorder_refuses_records() -> None:
    with TraceRecorder() as recorder:
        pass
    trace = recorder.trace()
    assert trace.steps.empty and trace.calls.empty and trace.meta.agent_names == []
    with pytest.raises(RuntimeError, match="closed"):
        recorder.on_step(StepRecord(0, "a", 0, AgentState((0, 0)), (), (), 0, 0.0, 0.0))
    with pytest.raises(ValueError, match="chunk_rows"):
        TraceRecorder(chunk_rows=0)
