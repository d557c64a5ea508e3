"""Which worker runs a unit: spatial affinity. Agents are split once, at the start, into equal-count strips of
the map (along its longer side), one per worker, so that the agents who meet (a cluster) usually belong to one
worker and a unit runs where its members' private state already is. A unit goes to the worker owning most of its
members; when that worker is out (dead and being replaced, or given up on), to the live worker with fewest units.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from metropolis.world.spatial import Pos


def spatial_owners(positions: Sequence[Pos], workers: int) -> list[int]:
    """Each agent's worker: `workers` strips of equal count along the longer side of the agents' bounding box."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    xs = [p[0] for p in positions]
    ys = [p[1] for p in positions]
    wide = (max(xs) - min(xs)) >= (max(ys) - min(ys)) if positions else True
    order = sorted(
        range(len(positions)), key=lambda a: (positions[a], a) if wide else ((positions[a][1], positions[a][0]), a)
    )
    owners = [0] * len(positions)
    for rank, agent in enumerate(order):
        owners[agent] = rank * workers // len(positions)
    return owners


class Placement:
    """The owners and the workers' state (live or out, units running on each); `pick` chooses a unit's worker."""

    def __init__(self, owners: list[int], workers: int) -> None:
        self.owners = owners
        self.live = [True] * workers
        self.running = [0] * workers

    def pick(self, members: Sequence[int]) -> int:
        if len(members) == 1 and self.live[self.owners[members[0]]]:
            return self.owners[members[0]]
        votes = Counter(self.owners[a] for a in members if self.live[self.owners[a]])
        if votes:
            return min(votes, key=lambda w: (-votes[w], w))
        candidates = [w for w, up in enumerate(self.live) if up]
        if not candidates:
            raise RuntimeError("every Ray worker is out: none is left to run a unit")
        return min(candidates, key=lambda w: (self.running[w], w))
