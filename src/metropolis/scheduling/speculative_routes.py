"""Routes: where an agent has said it will be, which the `speculative` policy reads as a promise.

An agent walking a planned path, or standing at its place until its sub-task is over, knows a set of tiles it will
stand on at every step up to a known step (a Generative Agents persona knows its path and its schedule; the
generated workload publishes both, `Workload.route_of`). A blocker whose route keeps it farther than R + V from a
unit at the unit's step cannot meet it there: it blocks nobody, without a guess. That is the promise of
`ctx.stay` generalised from one tile to a path, and like it, it is enforced when the agent commits.

An agent that knows it will talk with nobody at its next step (asleep, or already in a conversation) says so too
(`Route.alone`): coupling exists only for the writes a conversation makes into a partner, so such an agent is
coupled with nobody; two agents that both say they will not talk with each other (`Route.quiet_with`: they talked
lately) are not coupled with each other. An agent that only ever talks to agents it sees (`Routes.talks_in_sight`)
is coupled with another such agent only within R, not R + V.

Routes come from the agents' own knowledge after their last committed step, never from the recorded future.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from metropolis.world.spatial import Pos


class Place:
    """The tiles an agent may stand on through an area's step: the paths its plan can take, where the area's disc
    holds every tile within its radius. A blocker's disc around its route's end covers the town between its
    activities' places; its place is only the corridors it can walk. Shared by the routes that name it; the
    distances it was asked for are kept (agents stand still for long stretches, and ask again)."""

    __slots__ = ("_nearest", "tiles")

    def __init__(self, tiles: Sequence[Pos]) -> None:
        self.tiles = frozenset(tiles)
        self._nearest: dict[Pos, float] = {}

    def distance(self, pos: Pos, distance: Callable[[Pos, Pos], float]) -> float:
        """The least distance from `pos` to one of its tiles (by the one metric of a run)."""
        d = self._nearest.get(pos)
        if d is None:
            d = self._nearest[pos] = min(distance(pos, t) for t in self.tiles)
        return d


@dataclass(frozen=True, slots=True)
class Route:
    """At every step up to `until` the agent stands on one of `tiles`, which it walks in order from `tiles[0]`
    (where it stands now), no faster than a tile a step. It may promise more (`areas`): that it stands within a
    radius of where the route ends at every step up to a later one (its activity's place, until the activity
    ends, and those of the next ones: it knows every path its next sub-tasks there may take)."""

    until: int
    tiles: tuple[Pos, ...]
    # (through which step, how far), later steps first to last: it stands within that distance of `tiles[-1]` at
    # every step up to that one (a promise too)
    areas: tuple[tuple[int, float], ...] = ()
    # At the step it has reached it writes into nobody and nobody writes into it (asleep, or already in a
    # conversation): it is coupled with nobody there. A promise too: a unit it is not in cannot reach it
    # (`ctx.partner` refuses an agent outside the writer's unit).
    alone: bool = False
    places: tuple[Place, ...] = ()  # per area, the tiles it keeps to (empty: only the areas' discs are known)
    # The agents it neither writes into nor reads at that step: those it talked with lately, while the two wait
    # before they talk again (a Generative Agents pair waits hours). Two agents that say so of each other are
    # coupled through others only. A promise too, held as `alone` is.
    quiet_with: frozenset[int] = frozenset()

    def kept_from(
        self, pos: Pos, steps: int, step: int, distance: Callable[[Pos, Pos], float], reach: float = 0.0
    ) -> float | None:
        """The least distance from `pos` it can stand at `step`, `steps` steps from now, by its promises; None:
        it promised nothing that far. Beyond `reach` the answer may be any distance beyond it (an area's place
        is measured only where its disc comes within `reach`)."""
        if self.until >= step:
            return self.nearest(pos, steps, distance)
        for j, (until, _) in enumerate(self.areas):
            if until >= step:
                return self._area_distance(j, pos, distance, reach)
        return None

    def _area_distance(self, j: int, pos: Pos, distance: Callable[[Pos, Pos], float], reach: float) -> float:
        """The least distance from `pos` to area j: its disc's, or where that is within `reach`, its place's."""
        near = distance(pos, self.tiles[-1]) - self.areas[j][1]
        return near if near > reach or not self.places else self.places[j].distance(pos, distance)

    def keeps(self, pos: Pos, step: int, distance: Callable[[Pos, Pos], float]) -> bool:
        """Whether standing at `pos` at `step` keeps its promises."""
        if self.until >= step and pos not in self.tiles:
            return False
        for j, (until, radius) in enumerate(self.areas):
            if until < step:
                continue
            if pos not in self.places[j].tiles if self.places else distance(pos, self.tiles[-1]) > radius:
                return False
        return True

    def last_area(self) -> tuple[int, float] | None:
        """The area it keeps to longest, if it promised any beyond its route."""
        return self.areas[-1] if self.areas and self.areas[-1][0] > self.until else None

    def beyond_area(self, pos: Pos, distance: Callable[[Pos, Pos], float], reach: float) -> float:
        """The least distance from `pos` to its last area (`last_area`), as `kept_from` measures it."""
        return self._area_distance(len(self.areas) - 1, pos, distance, reach)

    def reachable(self, steps: int) -> tuple[Pos, ...]:
        """The tiles it may stand on within `steps` steps from now."""
        return self.tiles[: steps + 1]

    def nearest(self, pos: Pos, steps: int, distance: Callable[[Pos, Pos], float]) -> float:
        """The least distance from `pos` to a tile it may stand on within `steps` steps."""
        return min(distance(pos, t) for t in self.reachable(steps))


class Routes(Protocol):
    def route(self, agent: int, step: int) -> Route | None:
        """The route `agent` published when it committed the step before `step` (None: it knows none)."""
        ...

    def talks_in_sight(self, agent: int) -> bool:
        """Whether `agent` reads and writes only agents it sees (within R at its step), as a Generative Agents
        persona starts a conversation only with an agent in view: then two such agents farther than R apart at a
        step are not coupled. A promise for every step, enforced as `alone` is: a write outside the writer's
        unit is refused (`ctx.partner`)."""
        ...


class PublishesRoute(Protocol):
    """An agent that can say, for any step it has reached, the route it knew when it got there, and whether it
    talks only to agents in sight (`Routes.talks_in_sight`)."""

    talks_in_sight: bool

    def route_at(self, step: int) -> Route | None: ...


class AgentRoutes:
    """`Routes` read from the agents themselves."""

    def __init__(self, agents: Sequence[PublishesRoute]) -> None:
        self.agents = agents

    def route(self, agent: int, step: int) -> Route | None:
        return self.agents[agent].route_at(step)

    def talks_in_sight(self, agent: int) -> bool:
        return self.agents[agent].talks_in_sight


class BrokenRoute(RuntimeError):
    """An agent left the route it promised: others may already have run on the strength of it."""
