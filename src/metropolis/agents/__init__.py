"""Built-in agents."""

from metropolis.agents.player import PlayerAgent
from metropolis.agents.player_input import GoTo, Move, PlayerInput, Say
from metropolis.agents.randomwalk import WALKER_CALLS_PER_STEP, RandomWalker, WalkerConfig, town_walkers

__all__ = [
    "WALKER_CALLS_PER_STEP",
    "GoTo",
    "Move",
    "PlayerAgent",
    "PlayerInput",
    "RandomWalker",
    "Say",
    "WalkerConfig",
    "town_walkers",
]
