"""Tiny scenarios for the scheduling policies: who may run when."""

from __future__ import annotations

import pytest

from metropolis.scheduling import CausalityChecker, Dispatcher, Status, WorkUnit, scheduler_names
from metropolis.world import World
from metropolis.world.tilemap import TileMap


def line_world(R: float = 2.0, V: float = 1.0) -> World:
    return World(tilemap=TileMap.open(100, 3), perception_radius=R, max_velocity=V)


def drain(sched):
    units = []
    while (u := sched.pop_ready()) is not None:
        units.append(u)
    return units


def test_registry_lists_valid_names_on_unknown() -> None:
    assert scheduler_names() == ["serial", "lockstep", "metropolis", "speculative"]
    with pytest.raises(ValueError, match="choose one of: serial, lockstep, metropolis, speculative"):
        Dispatcher.of("fifo", line_world(), [(0, 0)], 1)


def test_coupled_agents_form_one_unit_and_far_ones_run_alone() -> None:
    # R + V = 3: agents 0 and 1 are 3 apart (coupled), agent 2 is far away.
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1), (3, 1), (50, 1)], until=5)
    units = drain(sched)
    assert [(u.step, u.members) for u in units] == [(0, (0, 1)), (0, (2,))]


def test_far_agent_runs_ahead_while_a_slow_one_is_still_running() -> None:
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1), (50, 1)], until=3)
    _slow, fast = drain(sched)
    sched.complete(fast, [(51, 1)])
    [again] = drain(sched)
    assert (again.step, again.members) == (1, (1,))
    sched.complete(again, [(52, 1)])
    assert [(u.step, u.members) for u in drain(sched)] == [(2, (1,))]
    assert sched.table.gvt() == 0


def test_blocked_agent_waits_for_the_agent_behind() -> None:
    # Distance 4: not coupled (R + V = 3), but once agent 1 reaches step 1 it is blocked by agent 0 at step 0,
    # since 4 <= (1 - 0 + 1) * V + R = 4.
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1), (4, 1)], until=3)
    first, second = drain(sched)
    assert (first.members, second.members) == ((0,), (1,))
    sched.complete(second, [(4, 1)])
    assert drain(sched) == []  # agent 1 at step 1 is blocked by agent 0 still at step 0
    assert sched.policy.blocked_by[1] == {0}
    sched.complete(first, [(0, 1)])
    # Now both are at step 1 and 4 apart: not coupled, not blocked: they run as two units.
    assert sorted(u.members for u in drain(sched)) == [(0,), (1,)]


def test_priority_prefers_the_lagging_agent() -> None:
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1), (50, 1)], until=5, priority=True)
    a, b = drain(sched)
    sched.complete(b, [(50, 1)])
    [b1] = drain(sched)
    sched.complete(b1, [(50, 1)])  # agent 1 at step 2, ready; agent 0 still running step 0
    sched.complete(a, [(0, 1)])  # agent 0 at step 1
    order = [(u.step, u.members) for u in drain(sched)]
    assert order == [(1, (0,)), (2, (1,))]
    fifo = Dispatcher.of("metropolis", line_world(), [(0, 1), (50, 1)], until=5, priority=False)
    a, b = drain(fifo)
    fifo.complete(b, [(50, 1)])
    [b1] = drain(fifo)
    fifo.complete(b1, [(50, 1)])
    fifo.complete(a, [(0, 1)])
    assert [(u.step, u.members) for u in drain(fifo)] == [(2, (1,)), (1, (0,))]


def test_lockstep_waits_for_the_barrier() -> None:
    sched = Dispatcher.of("lockstep", line_world(), [(0, 1), (50, 1)], until=2)
    a, b = drain(sched)
    sched.complete(b, [(50, 1)])
    assert drain(sched) == []
    sched.complete(a, [(0, 1)])
    assert [(u.step, u.members) for u in drain(sched)] == [(1, (0,)), (1, (1,))]


def test_serial_runs_one_agent_at_a_time_with_its_cluster() -> None:
    sched = Dispatcher.of("serial", line_world(), [(0, 1), (2, 1), (50, 1)], until=1)
    log = []
    while not sched.done():
        [unit] = drain(sched)
        log.append((unit.step, unit.members, unit.group))
        sched.complete(unit, [sched.table.pos[unit.members[0]]])
    assert log == [(0, (0,), (0, 1)), (0, (1,), (0, 1)), (0, (2,), (2,))]


def test_complete_rejects_a_unit_that_was_not_running() -> None:
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1)], until=2)
    [unit] = drain(sched)
    sched.complete(unit, [(0, 1)])
    with pytest.raises(RuntimeError, match="was not running"):
        sched.complete(unit, [(0, 1)])


def test_complete_rejects_positions_or_promises_that_do_not_match_the_members() -> None:
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1), (1, 1)], until=2)
    [unit] = drain(sched)  # coupled: one unit of both
    with pytest.raises(ValueError, match="unit of 2 agents completed with 1 positions"):
        sched.complete(unit, [(0, 1)])
    with pytest.raises(ValueError, match="unit of 2 agents completed with 3 promises to stand"):
        sched.complete(unit, [(0, 1), (1, 1)], [None, None, None])
    sched.complete(unit, [(0, 1), (2, 1)], [None, 1])
    assert sched.table.pos == [(0, 1), (2, 1)] and sched.table.still_until == [0, 1]


def test_gvt_and_done() -> None:
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1), (50, 1)], until=1)
    a, b = drain(sched)
    sched.complete(b, [(50, 1)])
    assert (sched.table.gvt(), sched.done(), sched.table.status[1]) == (0, False, Status.DONE)
    sched.complete(a, [(0, 1)])
    assert (sched.table.gvt(), sched.done()) == (1, True)


def test_zero_steps_is_done_at_once() -> None:
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1)], until=0)
    assert sched.done() and sched.pop_ready() is None


def test_checker_flags_a_broken_dispatch() -> None:
    sched = Dispatcher.of("metropolis", line_world(), [(0, 1), (4, 1)], until=3)
    checker = CausalityChecker(line_world(), sched.table, keeps_invariant=True)
    _first, second = drain(sched)
    sched.complete(second, [(4, 1)])
    with pytest.raises(RuntimeError, match="blocked by agent 0"):
        checker.on_dispatch(WorkUnit(1, (1,), (1,)))
