"""The built-in agent: a seedable random walker that meets, talks and remembers.

It exercises everything the scheduling contract must preserve: it reads what it observes, moves, writes into
partners of its cluster, and lets what others told it change its own behaviour. Optionally it makes LLM calls of
given sizes, so virtual-time runs have something for the serving model to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr

from metropolis.compiled import picklable
from metropolis.engine.agent import Agent, StepContext
from metropolis.world.spatial import Pos

# Generative Agents makes about 56,700 calls a day for 25 agents: 0.26 calls per agent-step.
WALKER_CALLS_PER_STEP = 56_700 / (25 * 8_640)


@dataclass(frozen=True, slots=True)
class WalkerConfig:
    move_prob: float = 0.7
    talk_prob: float = 0.3
    call_prob: float = 0.0
    rest_prob: float = 0.0  # each step, the chance it sits down for `rest_steps` and promises so (`ctx.stay`)
    rest_steps: int = 5
    prompt_tokens: int = 640
    output_tokens: int = 22

    def __post_init__(self) -> None:
        for field in ("move_prob", "talk_prob", "call_prob", "rest_prob"):
            v = getattr(self, field)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{field} must be within [0, 1], got {v}")
        if self.rest_steps < 1:
            raise ValueError(f"rest_steps must be >= 1, got {self.rest_steps}")


@mypyc_attr(allow_interpreted_subclasses=True)
class RandomWalker(Agent):
    def __init__(self, name: str, pos: Pos, config: WalkerConfig | None = None) -> None:
        super().__init__(name, pos, action="walking")
        self.config = config or WalkerConfig()
        self.inbox: list[str] = []  # what partners told it since its last step (read, then emptied)
        self.heard = 0  # how many messages it has been told in all
        self.resting_until = 0  # it stands still through this step

    async def step(self, ctx: StepContext) -> None:
        cfg, rng = self.config, ctx.rng
        seen = ctx.observe()
        if self.inbox:  # only the newest message is ever read: the inbox holds one step's (a run's would grow)
            self.heard += len(self.inbox)
            ctx.act(f"thinking about what {self.inbox[-1].split('@')[0]} said")
            self.inbox.clear()
        elif seen:
            ctx.act(f"looking at {seen[0].name}")
        else:
            ctx.act("walking")
        if cfg.call_prob and rng.random() < cfg.call_prob:
            await ctx.llm(
                "decide",
                f"{self.name} sees {len(seen)} people.",
                prompt_tokens=cfg.prompt_tokens,
                output_tokens=cfg.output_tokens,
                max_tokens=cfg.output_tokens,
            )
        other = rng.choice(seen) if seen and rng.random() < cfg.talk_prob else None
        if other is not None:
            partner = ctx.partner(other.agent_id)
            partner.inbox.append(f"{self.name}@{ctx.step}")  # type: ignore[attr-defined]
            ctx.say(f"{self.name} greets {other.name}")
        ctx.no_more_partners()  # whom it talks with is decided: the agents near it need not wait for the reply
        if other is not None and cfg.call_prob:
            await ctx.llm_for(
                other.agent_id,
                "reply",
                f"{other.name} answers {self.name}.",
                prompt_tokens=cfg.prompt_tokens,
                output_tokens=cfg.output_tokens,
                max_tokens=cfg.output_tokens,
            )
        if ctx.step + 1 <= self.resting_until:
            return  # promised to stay
        if cfg.rest_prob and rng.random() < cfg.rest_prob:
            self.resting_until = ctx.step + cfg.rest_steps
            ctx.stay(self.resting_until)
            return
        if rng.random() < cfg.move_prob:
            moves = ctx.world.moves(ctx.pos)
            # Heavier on moves away from what it heard last: so memory changes the path.
            if moves:
                ctx.move(moves[(rng.randrange(len(moves)) + self.heard) % len(moves)])

    def snapshot(self) -> object:
        return (self.heard, tuple(self.inbox))

    def state_dict(self) -> dict[str, Any]:
        """What steps change: what it was told, how much of it it has heard, and until when it rests (the config
        is fixed)."""
        return {"inbox": list(self.inbox), "heard": self.heard, "resting_until": self.resting_until}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inbox = list(state["inbox"])
        self.heard = int(state["heard"])
        self.resting_until = int(state.get("resting_until", 0))  # checkpoints written before it was saved


def town_walkers(residents: Iterable[tuple[str, Pos]]) -> list[RandomWalker]:
    """The town's residents (name, spawn) as walkers calling the LLM at Generative Agents' rate: what
    `metropolis run` runs without a real LLM, and what `metropolis bench scheduler` times end to end."""
    config = WalkerConfig(call_prob=WALKER_CALLS_PER_STEP)
    return [RandomWalker(name, spawn, config) for name, spawn in residents]


picklable(WalkerConfig)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
