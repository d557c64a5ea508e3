"""Generative-Agents-style agents for Metropolis: memory, planning, conversation, reflection, timelines."""

from __future__ import annotations

import math
import random

from metropolis.agents.genagent.agent import GenerativeAgent
from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.embeddings import make_embedder
from metropolis.agents.genagent.navigation import AreaIndex
from metropolis.agents.genagent.timeline import Timeline, parse_summary
from metropolis.world.smallville import Persona, Town

__all__ = ["GenAgentConfig", "GenerativeAgent", "Timeline", "build_town_agents", "household", "parse_summary"]


def build_town_agents(
    town: Town, n_agents: int, config: GenAgentConfig | None = None, seed: int = 0
) -> list[GenerativeAgent]:
    """`n_agents` personas of the town (the first ones, a seeded sample, or a household: the ones who start
    closest together), sharing one embedder and map index."""
    config = config or GenAgentConfig()
    personas = list(town.personas)
    if not 1 <= n_agents <= len(personas):
        raise ValueError(f"--agents must be within [1, {len(personas)}] for this town, got {n_agents}")
    if town.world.tilemap is None:
        raise ValueError("generative agents need a world with a tile map")
    if config.pick_personas == "random":
        chosen = sorted(random.Random(seed).sample(range(len(personas)), n_agents))
        personas = [personas[i] for i in chosen]
    elif config.pick_personas == "household":
        personas = household(personas, n_agents)
    else:
        personas = personas[:n_agents]
    embedder = make_embedder(config.embedder)
    index = AreaIndex(town)
    names = tuple(p.name for p in town.personas)
    return [GenerativeAgent(p, index, embedder, config, names) for p in personas]


def household(personas: list[Persona], n: int) -> list[Persona]:
    """The `n` personas who start closest together (the smallest spread around one of them; ties: the earliest
    persona), in town order: neighbours who wake near each other talk within minutes, which makes a short demo
    tell a story."""

    def around(i: int) -> tuple[float, list[int]]:
        x, y = personas[i].spawn
        by_distance = sorted(range(len(personas)), key=lambda j: (math.dist((x, y), personas[j].spawn), j))[:n]
        return max(math.dist((x, y), personas[j].spawn) for j in by_distance), by_distance

    _, best = min((around(i) for i in range(len(personas))), key=lambda pair: pair[0])
    return [personas[j] for j in sorted(best)]
