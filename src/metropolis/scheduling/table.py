"""The per-agent table of one run: each agent's step, status and latest position, the spatial index over those
positions, and the global virtual time (GVT, the lowest step of any agent).

There is one table per run, owned by the simulation, and it is the only place these facts live: the scheduling
policy keeps only its readiness logic and reads the table; the state store, the engine's neighbour query and
serving memory read it too, through `AgentView`. Only the run's owner changes it, with `start` (a unit was
dispatched) and `advance` (an agent committed a step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum

from metropolis.world.metrics import Metric
from metropolis.world.spatial import Pos, SpatialIndex
from metropolis.world.world import World


class Status(IntEnum):
    WAITING = 0
    RUNNING = 1
    DONE = 2


class AgentView:
    """The read-only face of the table: what everybody but the owner may see.

    A base class rather than a Protocol: compiled code (metropolis/compiled.py) reads a class's attributes and calls
    its methods natively, a protocol's through Python's generic lookup, and these are read on every commit. The
    lists are the table's own, read in place: a reader never writes into them (only `AgentTable`'s verbs do).
    """

    metric: Metric
    until: int
    step: list[int]
    pos: list[Pos]
    status: list[Status]
    still_until: list[int]
    index: SpatialIndex
    finished: int
    max_step: int
    version: int
    _at_step: dict[int, int]
    _gvt: int

    def __len__(self) -> int:
        return len(self.step)

    def near(self, pos: Pos, radius: float) -> Iterable[int]:
        return self.index.near(pos, radius)

    def gvt(self) -> int:
        return self._gvt

    def done(self) -> bool:
        return self.finished == len(self.step)

    def moves(self, agent: int, to_step: int) -> int:
        """Steps in which `agent` may still move before it reaches `to_step`: its gap to `to_step`, less the steps
        it promised to stand still (asleep, inside a building). The blocking rules use this for the gap."""
        return max(0, to_step - max(self.step[agent], self.still_until[agent]))


class AgentTable(AgentView):
    """`step[i]` is the number of steps agent i has completed; the run ends when every agent reaches `until`."""

    def __init__(self, world: World, positions: Sequence[Pos], until: int) -> None:
        if until < 0:
            raise ValueError(f"the number of steps to run must be >= 0, got {until}")
        n = len(positions)
        self.metric = world.metric
        self.until = until
        self.step = [0] * n
        self.pos = list(positions)
        self.status = [Status.DONE if until == 0 else Status.WAITING] * n
        # An agent's promise (`ctx.stay`): it stands where it is at every step up to this one (0: no promise).
        self.still_until = [0] * n
        # Called as a plain callable: compiled code would check the protocol's return type first, in its own words.
        make_index: Callable[[], object] = self.metric.make_index
        index = make_index()
        if not isinstance(index, SpatialIndex):  # a metric of one's own (`register_metric`) with a duck-typed index
            raise TypeError(
                f"metric {self.metric.name!r} made a {type(index).__name__} index, which does not subclass "
                "metropolis.world.SpatialIndex (add, move, remove, near)"
            )
        self.index = index
        for agent, p in enumerate(self.pos):
            self.index.add(agent, p)
        self._at_step = {0: n}
        self._gvt = 0 if n and until else until
        self.finished = n if until == 0 else 0
        self.max_step = 0  # the highest step any agent has reached
        self.version = 0  # commits so far: a reader that caches what it derived from positions checks this

    # -- the owner's verbs -------------------------------------------------------------------------------------

    def start(self, members: Iterable[int]) -> None:
        for agent in members:
            self.status[agent] = Status.RUNNING

    def stop(self, members: Iterable[int]) -> None:
        """Undo `start`: a speculative unit was rolled back, so its members wait at their step again."""
        for agent in members:
            if self.status[agent] is not Status.RUNNING:
                raise RuntimeError(f"agent {agent} was stopped although it was not running")
            self.status[agent] = Status.WAITING

    def advance(self, agent: int, step: int, new: Pos, still_until: int | None = None) -> None:
        """`agent` committed `step` and now stands at `new`; `still_until`: it promises to stand there through
        that step. A broken promise is an error: other agents may already have run on the strength of it."""
        if self.status[agent] is not Status.RUNNING or self.step[agent] != step:
            raise RuntimeError(f"agent {agent} completed step {step} it was not running")
        old = self.pos[agent]
        if new != old and step + 1 <= self.still_until[agent]:
            raise RuntimeError(
                f"agent {agent} moved at step {step} although it promised to stand still through step "
                f"{self.still_until[agent]}"
            )
        if still_until is not None:
            self.still_until[agent] = still_until
        if new != old:
            self.index.move(agent, old, new)
            self.pos[agent] = new
        s = step + 1
        self.step[agent] = s
        self.version += 1
        if s > self.max_step:
            self.max_step = s
        at = self._at_step
        at[step] -= 1
        at[s] = at.get(s, 0) + 1
        if s >= self.until:
            self.status[agent] = Status.DONE
            self.finished += 1
        else:
            self.status[agent] = Status.WAITING
        # GVT is the lowest step of any agent, so only an agent leaving it can raise it (one that was ahead
        # leaves a step somebody else still holds): most commits skip the loop.
        if step == self._gvt:
            while self._gvt < self.until and not at.get(self._gvt):
                at.pop(self._gvt, None)
                self._gvt += 1
