"""Scheduler micro-benchmark: controller time per decision and per agent-step, with synthetic completions.

No LLM and no serving model: random walkers on an open map at Smallville's density, unit durations drawn at
random, and a heap standing in for time. Only the controller's own calls (`pop_ready`, `complete`) are timed.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from metropolis.scheduling import Dispatcher, WorkUnit
from metropolis.world import World
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap

SMALLVILLE_TILES_PER_AGENT = 140 * 100 / 25


@dataclass(frozen=True, slots=True)
class SchedulerBenchRow:
    scheduler: str
    agents: int
    agent_steps: int
    decisions: int
    controller_seconds: float
    mean_ready_units: float

    @property
    def us_per_agent_step(self) -> float:
        return 1e6 * self.controller_seconds / self.agent_steps

    @property
    def us_per_decision(self) -> float:
        return 1e6 * self.controller_seconds / self.decisions


def bench_scheduler(
    agents: int,
    *,
    scheduler: str = "metropolis",
    agent_steps: int = 100_000,
    R: float = 4.0,
    V: float = 1.0,
    tiles_per_agent: float = SMALLVILLE_TILES_PER_AGENT,
    seed: int = 0,
) -> SchedulerBenchRow:
    """Run `agent_steps` synthetic agent-steps of `agents` random walkers and time the controller alone."""
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    rng = random.Random(seed)
    side = max(8, math.ceil(math.sqrt(agents * tiles_per_agent)))
    world = World(tilemap=TileMap.open(side, side), perception_radius=R, max_velocity=V)
    positions = [(rng.randrange(side), rng.randrange(side)) for _ in range(agents)]
    steps = max(1, agent_steps // agents)
    dispatcher = Dispatcher.of(scheduler, world, positions, steps)
    table = dispatcher.table
    pop, complete = dispatcher.pop_ready, dispatcher.complete

    clock = time.perf_counter
    heap: list[tuple[float, int, WorkUnit]] = []
    seq = 0
    now = 0.0
    spent = 0.0
    decisions = 0
    ready_area = 0.0
    while not table.done():
        t0 = clock()
        launched = []
        while (unit := pop()) is not None:
            launched.append(unit)
        spent += clock() - t0
        decisions += len(launched)
        for unit in launched:
            seq += 1
            heapq.heappush(heap, (now + rng.expovariate(1.0), seq, unit))
        ready_area += len(heap)
        now, _, done = heapq.heappop(heap)
        moved = [_step(table.pos[a], side, rng) for a in done.members]
        t0 = clock()
        complete(done, moved)
        spent += clock() - t0
    return SchedulerBenchRow(scheduler, agents, agents * steps, decisions, spent, ready_area / max(1, decisions))


def _step(pos: Pos, side: int, rng: random.Random) -> Pos:
    x, y = pos
    r = rng.randrange(5)
    if r == 0 and x + 1 < side:
        return (x + 1, y)
    if r == 1 and x > 0:
        return (x - 1, y)
    if r == 2 and y + 1 < side:
        return (x, y + 1)
    if r == 3 and y > 0:
        return (x, y - 1)
    return pos


def run_scheduler_bench(
    agent_counts: list[int],
    schedulers: list[str],
    agent_steps: int,
    progress: Callable[[str], None] | None = None,
) -> list[SchedulerBenchRow]:
    rows = []
    for n in agent_counts:
        for name in schedulers:
            if progress:
                progress(f"{name} at {n} agents")
            rows.append(bench_scheduler(n, scheduler=name, agent_steps=agent_steps))
    return rows
