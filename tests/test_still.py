"""Promises to stand still (`ctx.stay`) shorten blocking waits without speculation, and are enforced."""

from __future__ import annotations

import pytest

from metropolis.scheduling import CausalityChecker, Dispatcher
from metropolis.world import World
from metropolis.world.tilemap import TileMap


def world() -> World:
    return World(tilemap=TileMap.open(100, 3), perception_radius=2.0, max_velocity=1.0)


def how_far_a_runs(still_until: int | None) -> int:
    """A at x=0 and B at x=6 (R 2, V 1); B commits step 0 (with or without a promise), then never runs again:
    how far does A get?"""
    w = world()
    d = Dispatcher.of("metropolis", w, [(0, 1), (6, 1)], until=30)
    d.observers.append(CausalityChecker(w, d.table, keeps_invariant=True))
    a, b = d.pop_ready(), d.pop_ready()
    assert a is not None and b is not None and b.members == (1,)
    d.complete(b, [(6, 1)], [still_until])
    d.complete(a, [(0, 1)])
    progressed = True
    while progressed:
        progressed = False
        while (unit := d.pop_ready()) is not None:
            if unit.members == (0,):  # B's units are dispatched and never finish
                d.complete(unit, [(0, 1)])
                progressed = True
    return d.table.step[0]


def test_a_promise_lets_neighbours_run_ahead() -> None:
    # without it, B might walk 1 per step: A at step s waits once 6 <= (s - 1 + 1) * V + R, i.e. at s = 4
    assert how_far_a_runs(None) == 4
    # B stays through step 10: it can move only from step 10 on, so A waits at s = 10 + 3
    assert how_far_a_runs(10) == 13


def test_a_broken_promise_is_an_error() -> None:
    d = Dispatcher.of("metropolis", world(), [(6, 1)], until=5)
    unit = d.pop_ready()
    assert unit is not None
    d.complete(unit, [(6, 1)], [3])
    unit = d.pop_ready()
    assert unit is not None
    with pytest.raises(RuntimeError, match="promised to stand still through step 3"):
        d.complete(unit, [(7, 1)])
