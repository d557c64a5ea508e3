"""The replay agent: executes a workload (generated, or a recorded trace) under any scheduler.

Each step it writes into its recorded partners (so the cluster rules are checked as in the real run), issues its
recorded LLM calls one after another (its own, and its partners' turns of a conversation it leads), then moves to
its recorded position and takes its recorded action. It never calls `ctx.observe()`: what the real agent read is
already in the workload, and the oracle's dependencies come from there.

When the workload knows the agents' plans (`Workload.plan_next`), the last call an agent-step makes for each
speaker is preceded by that speaker's plan (`ctx.plan`), as a Generative Agents persona that knows its schedule
would: agent-aware serving reads it as the invocation distance. An agent-step
without calls publishes nothing (its plan stands).

When the workload knows the agents' routes (`Workload.route_until`), the agent publishes, for each step it reaches,
the route it knew when it got there (`route_at`): the tiles of its planned path and the step through which it stays
on them. The `speculative` policy reads them as promises (scheduling/speculative_routes.py). With them it says
when it talks with nobody at the step it reaches (`Route.alone`): a generated resident asleep or already in a
conversation after its last step (its recorded action then: "sleeping @ ..." or "chatting with ...") neither starts
a conversation nor is drawn into one (workloads/generator.py, `_attend`).

Against the serving model a call carries its recorded prompt and output lengths; against a real endpoint it
carries filler text of about the recorded prompt length and `max_tokens` = the recorded output length.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from typing import Any

from metropolis.engine import Agent, Simulation, StepContext
from metropolis.engine.simulation import SchedulerFactory
from metropolis.scheduling import AgentView, DependencyGraph, OracleScheduler
from metropolis.scheduling.speculative import SpeculativeScheduler
from metropolis.scheduling.speculative_routes import AgentRoutes, Place, Route
from metropolis.scheduling.speculative_window import Window
from metropolis.workloads.format import Call, Workload, walk_tiles
from metropolis.world.spatial import Pos
from metropolis.world.world import World

FILLER_WORD = "town "  # about one token per word for Llama-style tokenizers
# A generated resident whose last action was one of these talks with nobody at its next step (module docstring).
ALONE_ACTIONS = ("sleeping @ ", "chatting with ")


# Per step: route until, its tiles left, areas' until and radius; with the areas' places (per step, per area, an
# index into the places), if the workload knows them.
RouteColumns = tuple[
    Sequence[int],
    Sequence[int],
    Sequence[Sequence[int]],
    Sequence[Sequence[int]],
    tuple[Sequence[Sequence[int]], Sequence[Place]] | None,
]


INF_AGENT = 2**62  # sorts after every agent id (`ReplayAgent._quiet_at`)


def filler_text(tokens: int) -> str:
    """Text of about `tokens` tokens, for sending a prompt of the recorded size to a real endpoint."""
    return (FILLER_WORD * max(1, tokens)).rstrip()


class ReplayAgent(Agent):
    def __init__(
        self,
        name: str,
        path: Sequence[Pos],
        actions: Sequence[str],
        calls: dict[int, tuple[Call, ...]],
        partners: dict[int, tuple[int, ...]],
        *,
        send_text: bool = False,
        plans: dict[int, tuple[int | None, ...]] | None = None,
        promise_still: bool = False,
        routes: RouteColumns | None = None,
        talks_in_sight: bool = False,
        quiet_steps: int = 0,
    ) -> None:
        super().__init__(name, path[0], action=actions[0] if actions else "idle")
        self.path = path
        self.actions = actions
        self.calls = calls
        self.partners = partners
        self.send_text = send_text
        self.plans = plans or {}  # step -> per call of the step, the speaker's next planned call published before it
        self.still_through = still_stretches(path) if promise_still else None
        self.routes = routes  # per step: route until, tiles left, area until, radius, place (Workload.route_of)
        self._route_cache: dict[int, Route] = {}
        self.talks_in_sight = talks_in_sight  # its recorded partners are agents it saw (`Routes.talks_in_sight`)
        # Two agents that talked wait this many steps before they talk again (0: no such rule known): its routes say
        # whom it will not talk with (`Route.quiet_with`), from the conversations before the step only.
        self.quiet_steps = quiet_steps
        self._talks = sorted((s, p) for s, written in partners.items() for p in written) if quiet_steps else []

    async def step(self, ctx: StepContext) -> None:
        s = ctx.step
        for p in self.partners.get(s, ()):
            ctx.partner(p)
        ctx.no_more_partners()  # its conversations start first: the rest of the step touches nobody
        plans = self.plans.get(s)
        for k, (speaker, function, prompt, output) in enumerate(self.calls.get(s, ())):
            text = filler_text(prompt) if self.send_text else ()
            plan = None if plans is None else plans[k]
            if plan is not None:
                ctx.plan(plan, speaker)
            await ctx.llm_for(speaker, function, text, max_tokens=output, prompt_tokens=prompt, output_tokens=output)
        nxt = self.path[s + 1]
        if nxt != ctx.pos:
            ctx.move(nxt)
        if self.still_through is not None and self.still_through[s + 1] > s + 1:
            ctx.stay(self.still_through[s + 1])
        ctx.act(self.actions[s])

    def route_at(self, step: int) -> Route | None:
        """The route it knew when it reached `step` (after committing step - 1): None at the window's first step
        or when the workload knows no routes."""
        if self.routes is None or step < 1 or step >= len(self.path):
            return None
        route = self._route_cache.get(step)
        if route is None:
            until, moves = self.routes[0][step - 1], self.routes[1][step - 1]
            tiles = walk_tiles(self.path, step, moves)
            areas = tuple(zip(self.routes[2][step - 1], map(float, self.routes[3][step - 1]), strict=True))
            alone = self.actions[step - 1].startswith(ALONE_ACTIONS)
            known = self.routes[4]
            places = tuple(known[1][k] for k in known[0][step - 1]) if known is not None else ()
            if len(tiles) < moves + 1:
                # The window ends before the planned path does: its end, the centre of the areas' discs, is not
                # known here. Places need no centre; without them the areas cannot be read.
                areas = tuple((u, math.inf) for u, _ in areas) if places else ()
            route = self._route_cache[step] = Route(until, tiles, areas, alone, places, self._quiet_at(step))
        return route

    def _quiet_at(self, step: int) -> frozenset[int]:
        """The agents it talked with in the `quiet_steps` before `step` (conversations that began before it)."""
        if not self.quiet_steps:
            return frozenset()
        talks = self._talks
        first = bisect.bisect_right(talks, (step - self.quiet_steps, INF_AGENT))
        last = bisect.bisect_left(talks, (step, -1))
        return frozenset(p for _, p in talks[first:last])

    def state_dict(self) -> dict[str, Any]:
        """Nothing: a replay agent's steps read only its script, fixed at construction."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"a replay agent has no state to load, got keys {sorted(state)}")


def still_stretches(path: Sequence[Pos]) -> list[int]:
    """For each step t, the last step through which the agent stands where it is at t (its recorded path)."""
    out = [0] * len(path)
    last = len(path) - 1
    for t in range(last, -1, -1):
        out[t] = out[t + 1] if t < last and path[t + 1] == path[t] else t
    return out


def replay_agents(
    workload: Workload, *, send_text: bool = False, promise_still: bool = False, routes: bool = False
) -> list[ReplayAgent]:
    """One replay agent per workload agent, holding only its own columns (`routes`: and its routes, if known)."""
    n = workload.agents
    calls: list[dict[int, tuple[Call, ...]]] = [{} for _ in range(n)]
    plans: list[dict[int, tuple[int | None, ...]]] = [{} for _ in range(n)]
    for (agent, step), issued in workload.calls_by_agent_step().items():
        calls[agent][step] = issued
        if workload.plan_next is not None:
            plans[agent][step] = plan_hints(workload, step, issued)
    partners: list[dict[int, tuple[int, ...]]] = [{} for _ in range(n)]
    for (agent, step), written in workload.partners_by_agent_step().items():
        partners[agent][step] = written
    xy = workload.positions.tolist()
    names = workload.action_names
    codes = workload.actions.T.tolist()
    columns = (workload.route_until, workload.route_moves, workload.area_until, workload.area_radius)
    known = [c.swapaxes(0, 1).tolist() for c in columns if c is not None] if routes else []
    places = [Place(tiles) for tiles in workload.places()] if routes else []
    cooldown = workload.meta.get("talk_cooldown_steps")
    kept = workload.area_place.swapaxes(0, 1).tolist() if routes and workload.area_place is not None else None
    return [
        ReplayAgent(
            workload.names[i],
            [(p[i][0], p[i][1]) for p in xy],
            [names[c] for c in codes[i]],
            calls[i],
            partners[i],
            send_text=send_text,
            plans=plans[i],
            promise_still=promise_still,
            talks_in_sight=routes and bool(workload.meta.get("talks_in_sight", False)),
            quiet_steps=cooldown if routes and isinstance(cooldown, int) else 0,
            routes=(
                (known[0][i], known[1][i], known[2][i], known[3][i], None if kept is None else (kept[i], places))
                if len(known) == 4
                else None
            ),
        )
        for i in range(n)
    ]


def plan_hints(workload: Workload, step: int, issued: tuple[Call, ...]) -> tuple[int | None, ...]:
    """Per call of an agent-step: its speaker's next planned call before the speaker's last call of the step,
    else None."""
    last = {speaker: k for k, (speaker, *_) in enumerate(issued)}
    out: list[int | None] = [None] * len(issued)
    for speaker, k in last.items():
        out[k] = workload.plan_at(speaker, step)
    return tuple(out)


def oracle_scheduler(workload: Workload, *, priority: bool = True) -> SchedulerFactory:
    """The oracle for this workload: each agent-step waits only on the agent-steps it observed or talked with."""
    graph = DependencyGraph.from_steps(workload.step_deps(), workload.agents, workload.steps)

    def make(world: World, table: AgentView) -> OracleScheduler:
        return OracleScheduler(world, table, graph, priority=priority)

    return make


def replay_simulation(
    workload: Workload,
    world: World,
    scheduler: str | SchedulerFactory = "metropolis",
    *,
    priority: bool = True,
    send_text: bool = False,
    keep_history: bool = False,
    check_causality: bool = False,
    members: str = "concurrent",
    promise_still: bool = False,
    window: Window | None = None,
    routes: bool = False,
) -> Simulation:
    """A simulation that replays `workload` on `world` under `scheduler` (a name, "oracle", or a factory).
    `speculative` bets within `window` (None: its default) and, with `routes`, reads the routes the agents publish
    as promises (when the workload knows them)."""
    agents = replay_agents(workload, send_text=send_text, promise_still=promise_still, routes=routes)
    if scheduler == "oracle":
        scheduler = oracle_scheduler(workload, priority=priority)
    elif scheduler == "speculative" and (window is not None or routes):
        known = AgentRoutes(agents) if routes and workload.route_until is not None else None
        scheduler = functools.partial(SpeculativeScheduler, window=window, priority=priority, routes=known)
    return Simulation(
        world,
        agents,
        until=workload.steps,
        scheduler=scheduler,
        priority=priority,
        keep_history=keep_history,
        check_causality=check_causality,
        start_seconds=workload.start_seconds,
        members=members,
    )
