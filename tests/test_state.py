from __future__ import annotations

import pytest

from metropolis.engine import AgentState, StateStore


def test_reads_as_of_a_step_and_collects_below_gvt() -> None:
    store = StateStore([AgentState((0, 0)), AgentState((5, 5))])
    store.commit(0, 0, AgentState((1, 0), "walk"))
    store.commit(0, 1, AgentState((2, 0), "walk"))
    assert store.step_of(0) == 2 and store.at(0, 1) == AgentState((1, 0), "walk")
    store.collect(1)  # agent 1 is still at step 0: GVT is 0 in reality; collecting at 1 drops step 0
    with pytest.raises(RuntimeError, match="not available"):
        store.at(0, 0)
    assert store.at(0, 2).pos == (2, 0) and store.kept() == 3


def test_keep_all_keeps_history() -> None:
    store = StateStore([AgentState((0, 0))], keep_all=True)
    store.commit(0, 0, AgentState((1, 0)))
    store.collect(1)
    assert [s.pos for s in store.history(0)] == [(0, 0), (1, 0)]


def test_commit_out_of_order_is_refused() -> None:
    store = StateStore([AgentState((0, 0))])
    with pytest.raises(RuntimeError, match="committed step 3 while at step 0"):
        store.commit(0, 3, AgentState((1, 0)))
