"""A call schedule: the saved form of the `independent` and `diffusion` workload classes, and the agent that
replays it through the engine.

Smallville's workload (`workloads.format.Workload`) records paths, conversations and calls; the two other
ScaleSim classes need less: for each agent, the steps at which it calls the LLM, how many calls each time, what
it knows of its next call then (its plan), and what it does (an action name a listener can read, such as
"repost"). A diffusion schedule also keeps its follower graph, so a replay runs on the same graph world.
Schedules are generated with a seed (`workloads.independent`, `workloads.diffusion`), saved as JSON and
loaded again: a replay of a loaded schedule issues the same calls as one of the generated schedule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from metropolis.engine.agent import Agent, StepContext
from metropolis.world.spatial import Pos

SCHEDULE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Burst:
    """One agent-step with calls: `calls` LLM calls at `step`; `plan`: the step of the agent's next call as it
    knows it then (None: it does not know; the replay then publishes nothing)."""

    step: int
    calls: int
    action: str
    plan: int | None = None

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ValueError(f"a burst at step {self.step} needs >= 1 call, got {self.calls}")
        if self.plan is not None and self.plan < self.step:
            raise ValueError(f"a burst at step {self.step} plans its next call earlier, at {self.plan}")


@dataclass(frozen=True, slots=True)
class CallSchedule:
    """A whole workload: every agent's bursts (sorted by step), its first plan (known at step 0), the
    steps the run lasts, and for graph workloads the edges (u, v): v follows u."""

    kind: str
    seed: int
    steps: int
    bursts: tuple[tuple[Burst, ...], ...]
    first_plans: tuple[int | None, ...]
    edges: tuple[tuple[int, int], ...] = ()
    prompt_tokens: int = 640
    output_tokens: int = 22
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.first_plans) != len(self.bursts):
            raise ValueError(f"{len(self.bursts)} agents but {len(self.first_plans)} first plans")
        for agent, bursts in enumerate(self.bursts):
            steps = [b.step for b in bursts]
            if steps != sorted(set(steps)) or (steps and not 0 <= steps[0] <= steps[-1] < self.steps):
                raise ValueError(f"agent {agent}: burst steps must be distinct, sorted and within 0..{self.steps - 1}")

    @property
    def agents(self) -> int:
        return len(self.bursts)

    @property
    def calls(self) -> int:
        return sum(b.calls for bursts in self.bursts for b in bursts)

    def save(self, path: Path) -> None:
        data = {
            "format": SCHEDULE_FORMAT,
            "kind": self.kind,
            "seed": self.seed,
            "steps": self.steps,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "params": self.params,
            "first_plans": list(self.first_plans),
            "edges": [list(e) for e in self.edges],
            "bursts": [[[b.step, b.calls, b.action, b.plan] for b in bs] for bs in self.bursts],
        }
        path.write_text(json.dumps(data, separators=(",", ":")))

    @classmethod
    def load(cls, path: Path) -> CallSchedule:
        data = json.loads(path.read_text())
        if data.get("format") != SCHEDULE_FORMAT:
            raise ValueError(f"{path}: not a call schedule of format {SCHEDULE_FORMAT} (got {data.get('format')!r})")
        return cls(
            data["kind"],
            data["seed"],
            data["steps"],
            tuple(tuple(Burst(*b) for b in bs) for bs in data["bursts"]),
            tuple(data["first_plans"]),
            tuple((u, v) for u, v in data["edges"]),
            data["prompt_tokens"],
            data["output_tokens"],
            data["params"],
        )


class ScheduledAgent(Agent):
    """Replays one agent's bursts: at step 0 it publishes its first plan; at a burst's step it publishes the
    burst's plan before its last call (as an agent that knows its schedule would), makes the calls and takes the
    burst's action. It stays where it is (a node of the graph world)."""

    def __init__(
        self, name: str, pos: Pos, bursts: tuple[Burst, ...], first_plan: int | None, tokens: tuple[int, int]
    ) -> None:
        super().__init__(name, pos, action="idle")
        self.bursts = {b.step: b for b in bursts}
        self.first_plan = first_plan
        self.tokens = tokens

    async def step(self, ctx: StepContext) -> None:
        burst = self.bursts.get(ctx.step)
        if burst is None:
            if ctx.step == 0 and self.first_plan is not None:
                ctx.plan(self.first_plan)
            ctx.act("idle")
            return
        prompt, output = self.tokens
        for i in range(burst.calls):
            if burst.plan is not None and i == burst.calls - 1:
                ctx.plan(burst.plan)
            await ctx.llm(burst.action, "", prompt_tokens=prompt, output_tokens=output)
        ctx.act(burst.action)

    def snapshot(self) -> object:
        return self.first_plan


def scheduled_agents(schedule: CallSchedule) -> list[ScheduledAgent]:
    """One agent per schedule row, agent i on graph node i."""
    tokens = (schedule.prompt_tokens, schedule.output_tokens)
    return [
        ScheduledAgent(f"agent-{i}", (i, 0), bursts, schedule.first_plans[i], tokens)
        for i, bursts in enumerate(schedule.bursts)
    ]
