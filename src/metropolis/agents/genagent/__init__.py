"""Generative-Agents-style agents for Metropolis: memory, planning, conversation, reflection, timelines."""

from __future__ import annotations

import random

from metropolis.agents.genagent.agent import GenerativeAgent
from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.embeddings import make_embedder
from metropolis.agents.genagent.navigation import AreaIndex
from metropolis.agents.genagent.timeline import Timeline, parse_summary
from metropolis.world.smallville import Town

__all__ = ["GenAgentConfig", "GenerativeAgent", "Timeline", "build_town_agents", "parse_summary"]


def build_town_agents(
    town: Town, n_agents: int, config: GenAgentConfig | None = None, seed: int = 0
) -> list[GenerativeAgent]:
    """`n_agents` personas of the town (the first ones, or a seeded sample), sharing one embedder and map index."""
    config = config or GenAgentConfig()
    personas = list(town.personas)
    if not 1 <= n_agents <= len(personas):
        raise ValueError(f"--agents must be within [1, {len(personas)}] for this town, got {n_agents}")
    if town.world.tilemap is None:
        raise ValueError("generative agents need a world with a tile map")
    if config.pick_personas == "random":
        chosen = sorted(random.Random(seed).sample(range(len(personas)), n_agents))
        personas = [personas[i] for i in chosen]
    else:
        personas = personas[:n_agents]
    embedder = make_embedder(config.embedder)
    index = AreaIndex(town)
    names = tuple(p.name for p in town.personas)
    return [GenerativeAgent(p, index, embedder, config, names) for p in personas]
