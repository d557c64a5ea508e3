"""The causality checker: validates the scheduling invariant at every dispatch and commit.

It scans all agents, so it costs O(N) per event; tests switch it on, production runs leave it off.
"""

from __future__ import annotations

from metropolis.scheduling.rules import block_radius, couple_radius, invariant_radius
from metropolis.scheduling.table import AgentView, Status
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.world import World


class CausalityViolation(RuntimeError):
    """A scheduler let an agent run while another could still change what it observes."""


class CausalityChecker:
    """Invariant: for all A, B with s_A != s_B, d(A, B) > R + (|s_A - s_B| - 1) * V.

    `keeps_invariant`: whether the policy keeps it at every commit (out-of-order policies do; barrier policies
    break it between barriers and stay correct because nobody runs ahead).
    """

    def __init__(self, world: World, table: AgentView, *, keeps_invariant: bool) -> None:
        self.table = table
        self.distance = world.metric.distance
        self.R, self.V = world.perception_radius, world.max_velocity
        self.keeps_invariant = keeps_invariant
        self.dispatches = 0
        self.commits = 0

    def on_dispatch(self, unit: WorkUnit) -> None:
        self.dispatches += 1
        members = set(unit.members)
        if not members <= set(unit.group):
            raise CausalityViolation(f"unit {unit} runs agents outside its own cluster")
        t, dist, R, V = self.table, self.distance, self.R, self.V
        for a in unit.members:
            sa, pa = t.step[a], t.pos[a]
            if sa != unit.step:
                raise CausalityViolation(f"agent {a} dispatched for step {unit.step} while at step {sa}")
            for b in range(len(t.step)):
                if b == a:
                    continue
                sb, d = t.step[b], dist(pa, t.pos[b])
                if sb < sa and d <= block_radius(t.moves(b, sa), R, V):
                    raise CausalityViolation(
                        f"agent {a} dispatched at step {sa} while blocked by agent {b} at step {sb} (d={d:.2f})"
                    )
                if sb == sa and d <= couple_radius(R, V) and b not in unit.group and t.status[b] is not Status.DONE:
                    raise CausalityViolation(
                        f"agent {a} dispatched at step {sa} without agent {b} it is coupled with (d={d:.2f})"
                    )

    def on_commit(self, unit: WorkUnit) -> None:
        self.commits += 1
        if not self.keeps_invariant:
            return
        t, dist, R, V = self.table, self.distance, self.R, self.V
        for a in unit.members:
            sa, pa = t.step[a], t.pos[a]
            for b in range(len(t.step)):
                sb = t.step[b]
                if sb == sa or b == a:
                    continue
                d = dist(pa, t.pos[b])
                behind, ahead = (a, sb) if sa < sb else (b, sa)
                limit = invariant_radius(t.moves(behind, ahead), R, V)
                if d <= limit:
                    raise CausalityViolation(
                        f"after step {unit.step}: agents {a} (step {sa}) and {b} (step {sb}) are {d:.2f} apart, "
                        f"within R + (|ds| - 1) V = {limit:.2f}"
                    )
