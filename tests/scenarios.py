"""Small worlds and drivers shared by the engine tests."""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from metropolis.agents import RandomWalker, WalkerConfig
from metropolis.engine import Simulation
from metropolis.scheduling import WorkUnit
from metropolis.world import World
from metropolis.world.tilemap import TileMap


def walled_map(width: int, height: int, wall_share: float, rng: random.Random) -> TileMap:
    walkable = np.array([[rng.random() >= wall_share for _ in range(width)] for _ in range(height)], dtype=bool)
    walkable[0, :] = True  # at least one walkable row, so every world has somewhere to stand
    return TileMap(width, height, walkable, name="walled")


def walker_sim(
    n: int,
    scheduler: str,
    *,
    seed: int = 0,
    size: int = 24,
    steps: int = 30,
    R: float = 3.0,
    V: float = 1.0,
    walls: float = 0.0,
    config: WalkerConfig | None = None,
    priority: bool = True,
) -> Simulation:
    rng = random.Random(seed)
    tilemap = walled_map(size, size, walls, rng)
    tiles = tilemap.walkable_tiles()
    world = World(tilemap=tilemap, perception_radius=R, max_velocity=V)
    agents = [RandomWalker(f"a{i}", rng.choice(tiles), config) for i in range(n)]
    return Simulation(
        world,
        agents,
        until=steps,
        scheduler=scheduler,
        seed=seed,
        check_causality=True,
        keep_history=True,
        priority=priority,
    )


def finish(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (agent steps without LLM calls) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended; this driver only runs steps without LLM calls")


def run_shuffled(sim: Simulation, rng: random.Random) -> None:
    """Drive a simulation completing in-flight units in a random order: the harshest interleaving test."""
    in_flight = []
    while not sim.done():
        while (unit := sim.pop_ready()) is not None:
            in_flight.append(unit)
        if not in_flight:
            raise AssertionError("deadlock: nothing ready or in flight")
        unit = in_flight.pop(rng.randrange(len(in_flight)))
        sim.commit(unit, finish(sim.execute(unit, None, lambda: 0.0)))


def outcome(sim: Simulation) -> tuple[list[Any], list[Any]]:
    return [sim.history(i) for i in range(len(sim.agents))], [a.snapshot() for a in sim.agents]


class AfterCommit:
    """Calls `fn` after every commit, once the table has advanced (a dispatcher observer)."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn

    def on_dispatch(self, unit: WorkUnit) -> None:
        pass

    def on_commit(self, unit: WorkUnit) -> None:
        self.fn()
