"""Built-in agents."""

from metropolis.agents.randomwalk import RandomWalker, WalkerConfig

__all__ = ["RandomWalker", "WalkerConfig"]
