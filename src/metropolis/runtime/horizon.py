"""The player's horizon: whose LLM requests a person in the town is waiting for, sent as interactive.

The player's own replies are interactive already (`PlayerAgent` asks so). Around it, the agents within the
blocking radius of its position (the ones the scheduling rules hold at its step, so its next steps wait for
theirs) and the agents it has spoken to are latency-critical too: their requests are marked interactive on the
way to the serving engine, which ranks them ahead of background work and lets them preempt it (the serving
model: llm/serving/replica.py; a real server: its dialect's `priority` field, llm/endpoints.py).

Where serving memory is modelled (`--memory invocation-distance`), the horizon's agents count as about to call
(invocation distance 0): their KV prefixes are kept on the GPU and prefetched first (`run_memory(pinned=...)`).

Marking changes when answers come, never what they say: the simulation stays the same run.
"""

from __future__ import annotations

import dataclasses

from metropolis.agents.player import PlayerAgent
from metropolis.engine.simulation import Simulation
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.scheduling.rules import block_radius


class Horizon:
    """Who is within `player`'s horizon now. `radius`: how near counts (default: the blocking radius of one
    step's gap, (1 + 1) V + R)."""

    def __init__(self, sim: Simulation, player: PlayerAgent, radius: float | None = None) -> None:
        if player.unique_id is None or sim.agents[player.unique_id] is not player:
            raise ValueError(f"{player.name} is not an agent of this simulation")
        world = sim.world
        self.player = player
        self.radius = block_radius(1, world.perception_radius, world.max_velocity) if radius is None else radius
        self._me = player.unique_id
        self._pos = sim.table.pos
        self._distance = world.metric.distance
        self._names = [a.name for a in sim.agents]

    def within(self, agent: int) -> bool:
        """Is `agent` within the horizon now: the player, near it, or the last one it spoke to?"""
        if agent == self._me:
            return True
        if self._distance(self._pos[agent], self._pos[self._me]) <= self.radius:
            return True
        talked = self.player.talked
        return bool(talked) and talked[-1] == self._names[agent]  # wherever they went since


class PlayerHorizon:
    """An LLM backend in front of `inner` that marks requests of agents within `player`'s horizon interactive."""

    def __init__(self, inner: LLMBackend, sim: Simulation, player: PlayerAgent, radius: float | None = None) -> None:
        self.inner = inner
        self.horizon = Horizon(sim, player, radius)
        self.marked = 0  # requests this wrapper made interactive
        self.requests = 0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests += 1
        if not request.interactive and request.agent_id is not None and self.horizon.within(request.agent_id):
            request = dataclasses.replace(request, interactive=True)
            self.marked += 1
        return await self.inner.complete(request)
