"""Built-in agents."""

from metropolis.agents.randomwalk import WALKER_CALLS_PER_STEP, RandomWalker, WalkerConfig, town_walkers

__all__ = ["WALKER_CALLS_PER_STEP", "RandomWalker", "WalkerConfig", "town_walkers"]
