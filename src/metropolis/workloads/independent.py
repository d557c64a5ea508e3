"""The `independent` workload class (ScaleSim): agents act alone, so each next call follows from the current
action's known duration.

Every agent alternates actions and short bursts of calls: when an action ends it makes 1-3 calls to choose the
next one, and knows then how long that action will take, so it publishes "my next call is when this action
ends" before its last call. Most actions are short (a few minutes), some are long (working, asleep: up to an
hour), so at any moment most agents are idle for a long stretch: the setting where an exact invocation distance
is free. Nobody interacts, so the world is a graph without edges.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from metropolis.engine.simulation import Simulation
from metropolis.workloads.schedule import Burst, CallSchedule, scheduled_agents
from metropolis.world.world import World


@dataclass(frozen=True, slots=True)
class IndependentConfig:
    agents: int = 100
    steps: int = 90  # 15 minutes of 10-second steps
    short: tuple[int, int] = (3, 30)  # steps of a short action
    long: tuple[int, int] = (60, 360)  # and of a long one
    long_share: float = 0.3
    calls: tuple[int, int] = (1, 3)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.agents < 1 or self.steps < 1:
            raise ValueError(f"an independent workload needs >= 1 agent and step, got {self.agents}, {self.steps}")
        if not 0 <= self.long_share <= 1:
            raise ValueError(f"long_share must be within [0, 1], got {self.long_share}")
        for name, (lo, hi) in (("short", self.short), ("long", self.long), ("calls", self.calls)):
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be a range 1 <= lo <= hi, got {(lo, hi)}")


def _duration(cfg: IndependentConfig, rng: random.Random) -> int:
    return rng.randint(*(cfg.long if rng.random() < cfg.long_share else cfg.short))


def generate_independent(cfg: IndependentConfig) -> CallSchedule:
    """Each agent starts in the middle of an action (its first call is a known number of steps away) and then
    chains actions until the window ends; every plan is exact."""
    rng = random.Random(cfg.seed)
    all_bursts, first_plans = [], []
    for _ in range(cfg.agents):
        step = rng.randrange(_duration(cfg, rng))
        first_plans.append(step)
        bursts = []
        while step < cfg.steps:
            nxt = step + 1 + _duration(cfg, rng)
            bursts.append(Burst(step, rng.randint(*cfg.calls), "choose next action", nxt))
            step = nxt
        all_bursts.append(tuple(bursts))
    params = {"long_share": cfg.long_share}
    return CallSchedule("independent", cfg.seed, cfg.steps, tuple(all_bursts), tuple(first_plans), params=params)


def independent_world(agents: int) -> World:
    """Agents on the nodes of a graph without edges: no two ever meet (hop distance is infinite)."""
    import networkx as nx

    from metropolis.world.graph import HopMetric

    graph = nx.empty_graph(agents)
    return World(metric=HopMetric(graph), perception_radius=1.0, max_velocity=1.0, graph=graph, name="independent")


def independent_simulation(schedule: CallSchedule, scheduler: str, seed: int = 0) -> Simulation:
    """The schedule replayed by `ScheduledAgent`s on an edgeless graph world."""
    world = independent_world(schedule.agents)
    return Simulation(world, scheduled_agents(schedule), until=schedule.steps, scheduler=scheduler, seed=seed)
