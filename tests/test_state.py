from __future__ import annotations

import pytest

from metropolis.engine import AgentState, StateStore
from metropolis.scheduling import AgentTable
from metropolis.world import World
from metropolis.world.tilemap import TileMap


def store_of(*positions: tuple[int, int], keep_all: bool = False) -> tuple[StateStore, AgentTable]:
    """A store over its run's agent table; the table is driven by hand as the dispatcher would."""
    table = AgentTable(World(tilemap=TileMap.open(10, 10)), list(positions), until=5)
    return StateStore([AgentState(p) for p in positions], table, keep_all=keep_all), table


def commit(store: StateStore, table: AgentTable, agent: int, state: AgentState) -> None:
    step = table.step[agent]
    store.commit(agent, step, state)
    table.start([agent])
    table.advance(agent, step, state.pos)


def test_reads_as_of_a_step_and_collects_below_gvt() -> None:
    store, table = store_of((0, 0), (5, 5))
    commit(store, table, 0, AgentState((1, 0), "walk"))
    commit(store, table, 0, AgentState((2, 0), "walk"))
    assert table.step[0] == 2 and store.at(0, 1) == AgentState((1, 0), "walk")
    with pytest.raises(RuntimeError, match="not available"):
        store.at(1, 1)  # agent 1 is still at step 0: its step 1 does not exist yet
    store.collect(1)  # GVT is 0 in reality; collecting at 1 drops step 0
    with pytest.raises(RuntimeError, match="not available"):
        store.at(0, 0)
    assert store.at(0, 2).pos == (2, 0) and store.kept() == 3


def test_keep_all_keeps_history() -> None:
    store, table = store_of((0, 0), keep_all=True)
    commit(store, table, 0, AgentState((1, 0)))
    store.collect(1)
    assert [s.pos for s in store.history(0)] == [(0, 0), (1, 0)]


def test_commit_out_of_order_is_refused() -> None:
    store, _ = store_of((0, 0))
    with pytest.raises(RuntimeError, match="committed step 3 while at step 0"):
        store.commit(0, 3, AgentState((1, 0)))
