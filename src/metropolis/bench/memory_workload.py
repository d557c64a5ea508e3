"""What `metropolis bench memory` simulates: agents whose LLM calls come in bursts between long quiet spells.

`BurstyAgent` is the development stand-in for the Smallville workload (see `bench/memory.py` for which one a
run uses): it walks at random and, like a Generative Agents persona, alternates planned quiet spells (walking
somewhere, working, asleep: 3-30 steps, ten times longer for a fifth of the agents) with short bursts of 1-4
calls per step for 1-3 steps, and talks (two calls, one per side) when it meets someone. Before a quiet spell it
publishes its plan (`ctx.plan`: next call at step X) before its last request, as a real agent that
knows its schedule would; meetings are not planned, which is what the spatial bound is for. Everything random
comes from `ctx.rng`, so every scheduler runs the same simulation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from metropolis.engine.agent import Agent, StepContext
from metropolis.engine.simulation import Simulation
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import TileMap
from metropolis.world.world import World

SMALLVILLE_TILES_PER_AGENT = 140 * 100 / 25


@dataclass(frozen=True, slots=True)
class BurstConfig:
    prompt_tokens: int = 640  # the paper's mean: 642.6 input tokens per call
    output_tokens: int = 22  # and 21.9 output tokens
    idle: tuple[int, int] = (3, 30)
    sleeper_share: float = 0.2
    talk_prob: float = 0.3


class BurstyAgent(Agent):
    def __init__(self, name: str, pos: Pos, sleeper: bool, config: BurstConfig) -> None:
        super().__init__(name, pos, action="walking")
        self.sleeper = sleeper
        self.config = config
        self.next_active = 0
        self.burst_left = 0

    async def step(self, ctx: StepContext) -> None:
        cfg, rng = self.config, ctx.rng
        seen = ctx.observe()
        moves = ctx.world.moves(ctx.pos)
        if moves:
            ctx.move(moves[rng.randrange(len(moves))])
        if ctx.step < self.next_active:
            ctx.act("busy with the plan")
            if seen and rng.random() < cfg.talk_prob * 0.2:
                await self._talk(ctx, seen[0].agent_id)
            return
        if self.burst_left == 0:
            self.burst_left = rng.randint(1, 3)
        self.burst_left -= 1
        planned = False
        if self.burst_left == 0:
            idle = rng.randint(*cfg.idle) * (10 if self.sleeper else 1)
            self.next_active = ctx.step + 1 + idle
            planned = True
        calls = rng.randint(1, 4)
        for i in range(calls):
            if planned and i == calls - 1:
                ctx.plan(self.next_active)
            await ctx.llm("decide", "", prompt_tokens=cfg.prompt_tokens, output_tokens=cfg.output_tokens)
        ctx.act("thinking")
        if seen and rng.random() < cfg.talk_prob:
            await self._talk(ctx, seen[0].agent_id)

    async def _talk(self, ctx: StepContext, other: int) -> None:
        ctx.partner(other)
        ctx.say(f"{self.name} talks to agent {other}")
        cfg = self.config  # a talk sends no plan: it does not change what either agent plans next
        await ctx.llm("converse", "", prompt_tokens=cfg.prompt_tokens, output_tokens=cfg.output_tokens)
        await ctx.llm_for(other, "reply", "", prompt_tokens=cfg.prompt_tokens, output_tokens=cfg.output_tokens)

    def snapshot(self) -> object:
        return (self.next_active, self.burst_left)


def bursty_simulation(
    agents: int, steps: int, scheduler: str, seed: int = 0, config: BurstConfig | None = None
) -> Simulation:
    """`agents` bursty agents on an open map at Smallville's density (R = 4, V = 1, 10 s per step)."""
    cfg = config or BurstConfig()
    rng = random.Random(seed)
    side = max(8, math.ceil(math.sqrt(agents * SMALLVILLE_TILES_PER_AGENT)))
    world = World(tilemap=TileMap.open(side, side), perception_radius=4.0, max_velocity=1.0)
    population = [
        BurstyAgent(f"agent-{i}", (rng.randrange(side), rng.randrange(side)), rng.random() < cfg.sleeper_share, cfg)
        for i in range(agents)
    ]
    return Simulation(world, population, until=steps, scheduler=scheduler, seed=seed)
