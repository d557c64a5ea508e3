"""Positions as of a step (engine/snapshots.py): the neighbour query through them sees what it saw without them."""

from __future__ import annotations

import pytest

from metropolis.agents import WalkerConfig
from metropolis.engine import Simulation, StepRecord
from metropolis.engine.snapshots import StepSnapshots
from metropolis.engine.state import AgentState
from metropolis.llm import LLMRequest, LLMResponse
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.scheduling import AgentTable
from metropolis.world import World
from tests.scenarios import walker_sim


class SteadyLLM:
    """Answers after a latency that depends only on the request's step and speaker."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    async def complete(self, request: LLMRequest) -> LLMResponse:
        start = self.env.now
        await self.env.timeout(0.1 + (request.step * 7 + (request.agent_id or 0) * 3) % 10 / 10)
        return LLMResponse("ok", 10, 2, start, self.env.now, "virtual")


class StepLog:
    """Every step's record: what it observed (and so where it went) as the neighbour query answered it."""

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    def on_step(self, record: StepRecord) -> None:
        self.steps.append(record)

    def on_call(self, record: object) -> None:
        pass


def observations(sim: Simulation) -> list[tuple[int, int, tuple[int, ...], tuple[int, int]]]:
    """Run `sim` in virtual time and log every step's observed agents and resulting position, in commit order.
    (A listener, not a wrapped `neighbors_at`: a compiled `Simulation`'s methods cannot be replaced.)"""
    log = StepLog()
    sim.listeners.append(log)
    env = Environment()
    VirtualRuntime(sim, env, SteadyLLM(env)).run()
    return [(r.agent, r.step, r.observed, r.state.pos) for r in log.steps]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_query_through_snapshots_sees_what_the_table_index_saw(seed: int) -> None:
    config = WalkerConfig(move_prob=0.9, talk_prob=0.5, call_prob=0.5)
    fast = walker_sim(12, "metropolis", seed=seed, size=16, steps=40, config=config)
    assert fast.snapshots is not None
    slow = walker_sim(12, "metropolis", seed=seed, size=16, steps=40, config=config)
    slow.snapshots = None  # the table's index, widened by how far agents ahead may have walked since
    seen = observations(fast)
    assert seen == observations(slow)
    assert any(found for _, _, found, _ in seen)  # the town is small enough for agents to meet


def test_policies_that_do_not_dispatch_clear_keep_the_table_index() -> None:
    assert walker_sim(4, "lockstep").snapshots is None
    assert walker_sim(4, "serial").snapshots is None


def test_a_step_index_is_built_on_first_query_kept_by_arrivals_and_dropped_below_gvt() -> None:
    table = AgentTable(World(), [(0, 0), (5, 0)], until=3)
    snaps = StepSnapshots(table.metric, table)
    states = [[AgentState((0, 0))], [AgentState((5, 0))]]
    base = [0, 0]
    assert sorted(snaps.near(0, (0, 0), 10.0, states, base)) == [0, 1]
    assert list(snaps.near(1, (0, 0), 10.0, states, base)) == []  # nobody reached step 1 yet
    snaps.arrived(1, 1, AgentState((4, 0)))
    assert list(snaps.near(1, (0, 0), 10.0, states, base)) == [1]
    snaps.collect(1)
    assert sorted(snaps._indexes) == [1]
