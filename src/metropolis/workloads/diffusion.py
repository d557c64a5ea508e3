"""The `diffusion` workload class (ScaleSim): activation follows paths on a social graph.

A few agents post; every agent a post reaches calls the LLM to decide whether to repost it, and reposts with
probability `repost_prob`, which exposes its followers `delay` steps later (the time until they read their
feed). So who calls next is who is a few hops from the propagation front, and everybody else is idle. The
follower graph is a networkx social graph (`world.graph.social_graph`: scale free by default, follows are
mutual); the run is on the graph world of that graph, where distance counts hops.

An agent's action names what it did with each post it read at a step: "post 0", "repost 2", "read 1" (joined
by ";"), which is public (everybody sees a repost) and what `FrontDistance` estimates from: an agent h hops
from an agent that just (re)posted is expected to read the post h x (mean delay) steps later.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass

from metropolis.engine.records import CallRecord, Plan, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.workloads.schedule import Burst, CallSchedule, scheduled_agents
from metropolis.world.graph import social_graph
from metropolis.world.world import World

SHARES = ("post", "repost")


@dataclass(frozen=True, slots=True)
class DiffusionConfig:
    agents: int = 1000
    steps: int = 90
    posts: int = 6  # posts seeded by random agents in the first half of the window
    repost_prob: float = 0.3
    delay: tuple[int, int] = (1, 8)  # steps until a follower reads a repost
    graph: str = "scale_free"
    degree: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if self.agents <= self.degree or self.steps < 2 or self.posts < 1:
            raise ValueError(
                f"a diffusion workload needs more agents than the degree, >= 2 steps and >= 1 post; got "
                f"{self.agents} agents, degree {self.degree}, {self.steps} steps, {self.posts} posts"
            )
        if not 0 <= self.repost_prob <= 1:
            raise ValueError(f"repost_prob must be within [0, 1], got {self.repost_prob}")
        if not 1 <= self.delay[0] <= self.delay[1]:
            raise ValueError(f"delay must be a range 1 <= lo <= hi steps, got {self.delay}")

    @property
    def hop_steps(self) -> float:
        """The expected steps per hop of a cascade: the mean delay."""
        return (self.delay[0] + self.delay[1]) / 2


def generate_diffusion(cfg: DiffusionConfig) -> CallSchedule:
    """Run the cascades on the follower graph (seeded): each exposure is a decision call, each repost exposes
    the agent's followers who have not decided on that post yet."""
    rng = random.Random(cfg.seed)
    graph = social_graph(cfg.agents, cfg.seed, cfg.graph, cfg.degree)
    events: list[tuple[int, int, int, str]] = []  # (step, agent, post, verb)
    for post in range(cfg.posts):
        events.append((rng.randrange(cfg.steps // 2), rng.randrange(cfg.agents), post, "post"))
    heapq.heapify(events)
    decided: set[tuple[int, int]] = set()
    did: dict[tuple[int, int], list[str]] = {}  # (agent, step) -> what it did at that step
    while events:
        step, agent, post, verb = heapq.heappop(events)
        if step >= cfg.steps or (agent, post) in decided:
            continue
        decided.add((agent, post))
        if verb == "read" and rng.random() < cfg.repost_prob:
            verb = "repost"
        did.setdefault((agent, step), []).append(f"{verb} {post}")
        if verb in SHARES:
            for follower in sorted(graph.neighbors(agent)):
                if (follower, post) not in decided:
                    heapq.heappush(events, (step + rng.randint(*cfg.delay), follower, post, "read"))
    return _schedule(cfg, did, sorted(graph.edges))


def _schedule(
    cfg: DiffusionConfig, did: dict[tuple[int, int], list[str]], edges: list[tuple[int, int]]
) -> CallSchedule:
    """Bursts from what each agent did; an agent knows only its own posts ahead (others' reposts surprise it), so
    its plan is its next post, else the end of the window (nothing planned)."""
    per_agent: list[list[Burst]] = [[] for _ in range(cfg.agents)]
    posts_of: dict[int, list[int]] = {}
    for (agent, step), acts in did.items():
        if any(a.startswith("post ") for a in acts):
            posts_of.setdefault(agent, []).append(step)
    for (agent, step), acts in sorted(did.items(), key=lambda kv: kv[0][1]):
        later = [s for s in posts_of.get(agent, []) if s > step]
        per_agent[agent].append(Burst(step, len(acts), ";".join(acts), min(later, default=cfg.steps)))
    first = tuple(min(posts_of.get(a, []), default=cfg.steps) for a in range(cfg.agents))
    params = {"repost_prob": cfg.repost_prob, "hop_steps": cfg.hop_steps}
    bursts = tuple(map(tuple, per_agent))
    return CallSchedule("diffusion", cfg.seed, cfg.steps, bursts, first, tuple(edges), params=params)


def diffusion_world(schedule: CallSchedule) -> World:
    """The graph world of the schedule's follower graph: R = 1 hop (an agent reads its followees), V = 1."""
    import networkx as nx

    from metropolis.world.graph import HopMetric

    graph = nx.Graph()
    graph.add_nodes_from(range(schedule.agents))
    graph.add_edges_from(schedule.edges)
    return World(metric=HopMetric(graph), perception_radius=1.0, max_velocity=1.0, graph=graph, name="diffusion")


def diffusion_simulation(schedule: CallSchedule, scheduler: str, seed: int = 0) -> Simulation:
    return Simulation(
        diffusion_world(schedule), scheduled_agents(schedule), until=schedule.steps, scheduler=scheduler, seed=seed
    )


def parse_actions(action: str) -> list[tuple[str, int]]:
    """ "repost 2;read 1" -> [("repost", 2), ("read", 1)]; other actions ("idle") -> []."""
    out = []
    for part in action.split(";"):
        verb, _, post = part.partition(" ")
        if verb in (*SHARES, "read") and post.isdigit():
            out.append((verb, int(post)))
    return out


class FrontDistance:
    """The invocation distance of a cascade: hops from the propagation front times the mean delay per hop.

    A listener (`on_step`): when an agent (re)posts post k at step s, every agent within `horizon` hops that
    has not decided on k yet is expected to read it at s + hops x `hop_steps`; the earliest such expectation is
    published as the agent's plan into `publish` (an `InvocationDistance.on_plan`), so the memory policy ranks
    agents near the front first. An expectation the agent's own step passes without a read is forgotten (the
    agent in between did not repost); an agent with none left plans nothing until the end of the window.
    """

    def __init__(
        self,
        schedule: CallSchedule,
        publish: Callable[[int, Plan], None],
        step_of: Callable[[int], int],
        horizon: int = 1,
    ) -> None:
        import networkx as nx

        self.graph = nx.Graph(list(schedule.edges))
        self.publish = publish
        self.step_of = step_of
        self.hop_steps = schedule.params.get("hop_steps", 1.0)
        self.horizon = horizon
        self.until = schedule.steps
        self._expect: dict[int, dict[int, int]] = {}  # agent -> post -> expected step of its read
        self._decided: set[tuple[int, int]] = set()

    def on_step(self, record: StepRecord) -> None:
        agent, step = record.agent, record.step
        acts = parse_actions(record.state.action)
        expect = self._expect.get(agent, {})
        changed = bool(acts)
        for _, post in acts:
            self._decided.add((agent, post))
            expect.pop(post, None)
        for post in [p for p, at in expect.items() if at <= step]:  # the front did not come: forget it
            del expect[post]
            changed = True
        touched = {agent} if changed else set()
        for verb, post in acts:
            if verb in SHARES:
                touched |= self._spread(agent, post, step)
        for a in touched:
            self._republish(a, step)

    def on_call(self, record: CallRecord) -> None:
        """A call changes no front."""

    def _spread(self, source: int, post: int, step: int) -> set[int]:
        import networkx as nx

        if source not in self.graph:
            return set()
        touched = set()
        for agent, hops in nx.single_source_shortest_path_length(self.graph, source, cutoff=self.horizon).items():
            if hops == 0 or (agent, post) in self._decided:
                continue
            at = step + round(hops * self.hop_steps)
            expect = self._expect.setdefault(agent, {})
            if at < expect.get(post, at + 1):
                expect[post] = at
                touched.add(agent)
        return touched

    def _republish(self, agent: int, now: int) -> None:
        expect = self._expect.get(agent)
        at = min(expect.values()) if expect else self.until  # no front near: nothing planned
        self.publish(agent, Plan(now, max(at, self.step_of(agent), now)))
