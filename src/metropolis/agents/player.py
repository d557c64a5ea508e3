"""The player: a person in the town, an agent whose actions come from an input stream.

To the engine the player is just an agent: the blocking rules hold the agents that could affect it or be
affected by it at its step, and agents far away run ahead, out of order. What differs is where its actions come
from (`PlayerInput`: a script, a replayed trace, or a viewer's `push`) and when its step may start (the pacing:
`script` does not wait; `clock` and `input` follow the wall clock, in real time only).

Each step it takes that step's commands, moves (one `Move`, or a step towards its `GoTo` target), and for each
`Say` writes into the agent it speaks to (which must be in view, hence in its cluster) and asks the LLM for that
agent's reply: an interactive request, ahead of every background request (`LLMRequest.interactive`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metropolis.agents.player_input import Command, GoTo, Move, Pace, PlayerInput, Say, ScriptPace
from metropolis.agents.randomwalk import RandomWalker
from metropolis.engine.agent import Agent, Observation, StepContext
from metropolis.world.spatial import Pos

REPLY = "player_reply"  # the function name of the answers a person waits for: what latency figures select


@dataclass(frozen=True, slots=True)
class PlayerConfig:
    """The sizes of a reply in virtual time (the serving model needs them; a real model decides itself)."""

    prompt_tokens: int = 640
    output_tokens: int = 40

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise ValueError(
                f"a reply needs >= 1 prompt and output token, got {self.prompt_tokens}, {self.output_tokens}"
            )


class PlayerAgent(Agent):
    """`inputs`: where its commands come from; `pace`: when its steps may start (default: no waiting)."""

    def __init__(
        self,
        name: str,
        pos: Pos,
        inputs: PlayerInput | None = None,
        pace: Pace | None = None,
        config: PlayerConfig | None = None,
    ) -> None:
        super().__init__(name, pos, action="arriving")
        self.inputs = inputs if inputs is not None else PlayerInput()
        self.pace: Pace = pace if pace is not None else ScriptPace()
        self.config = config or PlayerConfig()
        self.target: Pos | None = None
        self.talked: list[str] = []  # whom it spoke to, in order (what its horizon keeps close)
        self.unanswered = 0  # utterances to nobody in view
        self.inbox: list[str] = []  # who greeted it ("name@step", as walkers write it): what a viewer shows

    async def step(self, ctx: StepContext) -> None:
        await self.pace.wait(ctx.step, self.inputs)
        commands = self.inputs.take(ctx.step)
        seen = ctx.observe()
        moved = False
        for command in commands:
            if isinstance(command, Say):
                await self._say(ctx, command, seen)
            elif not moved:
                moved = self._move(ctx, command)
        if not moved and self.target is not None:
            self._towards(ctx)
        ctx.act(_doing(commands, self.target))

    def _move(self, ctx: StepContext, command: Command) -> bool:
        if isinstance(command, GoTo):
            self.target = (command.x, command.y)
            return False
        assert isinstance(command, Move)
        self.target = None
        x, y = ctx.pos
        dest = (x + command.dx, y + command.dy)
        if ctx.world.check_move(ctx.pos, dest) is None:
            ctx.move(dest)
            return True
        return False

    def _towards(self, ctx: StepContext) -> None:
        """One step that brings it nearer its target (first such move in the world's order), or none."""
        assert self.target is not None
        dist = ctx.world.metric.distance
        here = dist(ctx.pos, self.target)
        best = min(ctx.world.moves(ctx.pos), key=lambda p: dist(p, self.target), default=None)  # type: ignore[arg-type]
        if best is not None and dist(best, self.target) < here:
            ctx.move(best)
        if ctx.pos == self.target or best is None or dist(best, self.target) >= here:
            self.target = None  # there, or stuck: stop trying

    async def _say(self, ctx: StepContext, command: Say, seen: list[Observation]) -> None:
        other = _addressee(command.to, seen)
        if other is None:
            self.unanswered += 1
            ctx.say(f"{self.name}: {command.text} (nobody called {command.to or 'anyone'} is near)")
            return
        partner = ctx.partner(other.agent_id)
        if isinstance(partner, RandomWalker):
            partner.inbox.append(f"{self.name}@{ctx.step}")  # the walker thinks about what it heard
        self.talked.append(other.name)
        ctx.say(f"{self.name} to {other.name}: {command.text}")
        cfg = self.config
        reply = await ctx.llm_for(
            other.agent_id,
            REPLY,
            f"{self.name} says to {other.name}: {command.text}\n{other.name} answers:",
            max_tokens=cfg.output_tokens,
            prompt_tokens=cfg.prompt_tokens,
            output_tokens=cfg.output_tokens,
            interactive=True,
        )
        ctx.say(f"{other.name} to {self.name}: {reply.text}")

    def snapshot(self) -> object:
        return (tuple(self.talked), self.unanswered, tuple(self.inbox))

    def state_dict(self) -> dict[str, Any]:
        """What steps change (the input queue and the pacing are shared, fixed objects)."""
        return {
            "target": self.target,
            "talked": list(self.talked),
            "unanswered": self.unanswered,
            "inbox": list(self.inbox),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target = state["target"]
        self.talked = list(state["talked"])
        self.unanswered = int(state["unanswered"])
        self.inbox = list(state["inbox"])


def _addressee(to: str | None, seen: list[Observation]) -> Observation | None:
    """The agent spoken to: the one called `to` in view, or the nearest in view when `to` is None."""
    if to is None:
        return seen[0] if seen else None
    return next((o for o in seen if o.name == to), None)


def _doing(commands: tuple[Command, ...], target: Pos | None) -> str:
    if any(isinstance(c, Say) for c in commands):
        return "talking"
    return "walking" if target is not None or commands else "standing"
