"""The agent API: subclass `Agent`, write `async def step(self, ctx)`. Mesa users should feel at home.

An agent's step observes the world as of its own step through `ctx`, may call the LLM, and acts: it moves at most
V, sets its action, says things, and may write into another agent of its cluster (start a conversation). Everything
random must come from `ctx.rng`, which is seeded by (run seed, agent, step): that is what lets every scheduler
reproduce the `serial` run exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metropolis.engine.state import AgentState
from metropolis.world.spatial import Pos

if TYPE_CHECKING:
    from metropolis.engine.context import StepContext


class Agent:
    """Base class for user agents. `unique_id` is assigned when the simulation takes the agent."""

    def __init__(self, name: str, pos: Pos, action: str = "idle") -> None:
        self.name = name
        self.start_pos = pos
        self.start_action = action
        self.unique_id: int | None = None

    def initial_state(self) -> AgentState:
        return AgentState(self.start_pos, self.start_action)

    async def step(self, ctx: StepContext) -> None:
        """Execute one step. The default does nothing: the agent stays where it is."""

    def snapshot(self) -> object:
        """A comparable digest of private state, used to check that schedulers agree beyond public state."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
