"""Checkpoints in process: sealed trace parts are readable without the recorder closing, a resumed run drops
the steps the parts hold and ends with the trace of a run never stopped, agent states are checked at the cut."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from metropolis.agents.randomwalk import RandomWalker, WalkerConfig
from metropolis.engine.agent import Agent, StepContext
from metropolis.engine.simulation import Simulation
from metropolis.kernel import Environment
from metropolis.runtime.checkpoint import Checkpointer, StateMismatch, interval_steps
from metropolis.runtime.virtual import VirtualRuntime
from metropolis.store import Checkpoint, SqliteStore
from metropolis.trace import Trace, TraceRecorder
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World
from tests.test_trace_recorder import FixedLatency

STEPS = 24


class Stop(Exception):
    """Stands for a kill: the run ends in the middle, nothing is closed."""


def _agents() -> list[Agent]:
    config = WalkerConfig(call_prob=0.5, talk_prob=0.6, prompt_tokens=100, output_tokens=7)
    return [RandomWalker(f"w{i}", (i, i % 2), config) for i in range(4)]


def _run(
    folder: Path,
    agents: list[Agent],
    stop_after: int | None = None,
    resume: Checkpoint | None = None,
    every: int = 4,
) -> tuple[Checkpointer, TraceRecorder]:
    env = Environment()
    sim = Simulation(World(tilemap=TileMap.open(6, 6), name="open6"), agents, until=STEPS, seed=3)
    parts = None if resume is None else resume.cut["parts"]
    recorder = TraceRecorder.for_simulation(sim, folder / "trace", chunk_rows=7, parts=parts)
    store = SqliteStore(folder / "store.sqlite")
    checkpointer = Checkpointer(sim, store, every=every, trace=recorder, resume=resume)
    sim.listeners += [recorder, checkpointer]
    if stop_after is not None:
        counter = itertools.count(1)

        class Killer:
            def on_call(self, record: object) -> None:
                pass

            def on_step(self, record: object) -> None:
                if next(counter) == stop_after:
                    raise Stop

        sim.listeners.append(Killer())
    try:
        VirtualRuntime(sim, env, FixedLatency(env)).run()
    except Stop:
        checkpointer._io.shutdown()  # a killed process writes no more; this one's I/O thread would, beside the next
        for buffer in (recorder._calls, recorder._steps):
            assert buffer.writer is not None
            buffer.writer.drain()
            buffer.writer.executor = None  # what a test does after the "kill" runs here
        return checkpointer, recorder
    finally:
        store.close()
    recorder.close()
    return checkpointer, recorder


def test_interval_in_simulated_minutes() -> None:
    assert interval_steps(5, 10) == 30 and interval_steps(0, 10) == 0 and interval_steps(0.01, 10) == 1
    with pytest.raises(ValueError, match=">= 0"):
        interval_steps(-1, 10)


def test_a_run_stopped_midway_keeps_a_readable_trace_up_to_its_last_checkpoint(tmp_path: Path) -> None:
    checkpointer, _ = _run(tmp_path, _agents(), stop_after=50)
    assert checkpointer.number >= 2  # taken; the store saves each once its parts are in place
    trace = Trace.read(tmp_path / "trace")
    by_pandas = pd.read_parquet(tmp_path / "trace" / "steps")
    saved = SqliteStore(tmp_path / "store.sqlite").latest_checkpoint()
    assert saved is not None and saved.number >= 1
    assert len(trace.steps) == len(by_pandas) >= saved.cut["agent_steps"]  # the parts of one taken, not yet saved


def test_a_resumed_run_ends_with_the_trace_of_a_run_never_stopped(tmp_path: Path) -> None:
    _run(tmp_path / "whole", _agents())
    want = Trace.read(tmp_path / "whole" / "trace")
    _run(tmp_path / "cut", _agents(), stop_after=50)
    checkpoint = SqliteStore(tmp_path / "cut" / "store.sqlite").latest_checkpoint()
    assert checkpoint is not None and checkpoint.states
    checkpointer, _ = _run(tmp_path / "cut", _agents(), resume=checkpoint)
    assert checkpointer.verified == len([s for s, _ in checkpoint.states.values() if s > 0]) > 0
    got = Trace.read(tmp_path / "cut" / "trace")
    pd.testing.assert_frame_equal(got.steps, want.steps)
    pd.testing.assert_frame_equal(got.calls, want.calls)


class Forgetful(RandomWalker):
    """Its state depends on something besides its seed: a counter shared by every run in the process."""

    shared = itertools.count()

    async def step(self, ctx: StepContext) -> None:
        await super().step(ctx)
        self.heard = next(self.shared) if self.name == "w0" else self.heard


def test_an_agent_that_does_not_repeat_itself_is_caught_at_the_cut(tmp_path: Path) -> None:
    config = WalkerConfig(call_prob=0.5, talk_prob=0.0, prompt_tokens=100, output_tokens=7)

    def agents() -> list[Agent]:
        return [Forgetful(f"w{i}", (i, i % 2), config) for i in range(4)]

    _run(tmp_path, agents(), stop_after=50)
    checkpoint = SqliteStore(tmp_path / "store.sqlite").latest_checkpoint()
    with pytest.raises(StateMismatch, match="agent w0"):
        _run(tmp_path, agents(), resume=checkpoint)


def test_state_dicts_round_trip() -> None:
    walker = RandomWalker("w", (0, 0))
    walker.inbox.append("x@1")
    state = walker.state_dict()
    other = RandomWalker("w", (0, 0))
    other.load_state_dict(state)
    assert other.state_dict() == state and other.inbox is not walker.inbox

    class Plain(Agent):
        def __init__(self) -> None:
            super().__init__("p", (0, 0))
            self.seen: list[int] = [1]

    plain = Plain()
    plain.unique_id = 3
    assert "unique_id" not in plain.state_dict() and plain.state_dict()["seen"] == [1]


def test_a_run_killed_while_joining_its_parts_resumes_to_the_whole_trace(tmp_path: Path) -> None:
    _run(tmp_path / "whole", _agents())
    want = Trace.read(tmp_path / "whole" / "trace")
    _, recorder = _run(tmp_path / "cut", _agents(), stop_after=50)
    recorder.checkpoint()
    assert recorder._calls.writer is not None
    recorder._calls.writer.finish()  # calls joined, steps not: killed in the middle of close()
    checkpoint = SqliteStore(tmp_path / "cut" / "store.sqlite").latest_checkpoint()
    _run(tmp_path / "cut", _agents(), resume=checkpoint)
    got = Trace.read(tmp_path / "cut" / "trace")
    pd.testing.assert_frame_equal(got.steps, want.steps)
    pd.testing.assert_frame_equal(got.calls, want.calls)


def test_a_checkpointed_trace_equals_one_written_without_checkpoints(tmp_path: Path) -> None:
    _run(tmp_path / "plain", _agents(), every=0)
    checkpointer, _ = _run(tmp_path / "sealed", _agents(), every=1)  # the joined file written as it went
    assert checkpointer.number >= STEPS - 1
    assert not (tmp_path / "sealed" / "trace" / "steps").exists()
    plain, sealed = Trace.read(tmp_path / "plain" / "trace"), Trace.read(tmp_path / "sealed" / "trace")
    pd.testing.assert_frame_equal(sealed.steps, plain.steps)
    pd.testing.assert_frame_equal(sealed.calls, plain.calls)


def test_incremental_checkpoints_keep_every_agents_newest_state(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.save_checkpoint(Checkpoint(1, {"gvt": 4}, {0: (4, b"a"), 1: (4, b"b")}))
    store.save_increment(Checkpoint(2, {"gvt": 8}, {1: (8, b"c")}))
    store.save_increment(Checkpoint(3, {"gvt": 12}, {}))
    assert store.latest_checkpoint() == Checkpoint(3, {"gvt": 12}, {0: (4, b"a"), 1: (8, b"c")})
    store.save_checkpoint(Checkpoint(4, {"gvt": 16}, {1: (16, b"d")}))  # a whole one replaces them all
    latest = store.latest_checkpoint()
    assert latest is not None and latest.states == {1: (16, b"d")}
    store.close()


def test_a_run_saves_only_the_agents_whose_state_changed(tmp_path: Path) -> None:
    config = WalkerConfig(call_prob=0.5, talk_prob=0.0, prompt_tokens=100, output_tokens=7)
    silent = [RandomWalker(f"w{i}", (i, i % 2), config) for i in range(4)]  # nobody talks: no state changes
    _run(tmp_path, silent)
    store = SqliteStore(tmp_path / "store.sqlite")
    saved_at = [n for (n,) in store._db.execute("SELECT DISTINCT number FROM agent_states")]
    latest = store.latest_checkpoint()
    store.close()
    assert latest is not None and latest.number > 1 and len(latest.states) == 4
    assert saved_at == [1], "saved at the first checkpoint, never again"
