"""The causality checker: validates the scheduling invariant at every dispatch and commit.

It scans all agents, so it costs O(N) per event; tests switch it on, production runs leave it off.
"""

from __future__ import annotations

from metropolis.scheduling.base import Scheduler, Status
from metropolis.scheduling.unit import WorkUnit


class CausalityViolation(RuntimeError):
    """A scheduler let an agent run while another could still change what it observes."""


class CausalityChecker:
    """Invariant: for all A, B with s_A != s_B, d(A, B) > R + (|s_A - s_B| - 1) * V."""

    def __init__(self) -> None:
        self.dispatches = 0
        self.commits = 0

    def on_dispatch(self, sched: Scheduler, unit: WorkUnit) -> None:
        self.dispatches += 1
        members = set(unit.members)
        if not members <= set(unit.group):
            raise CausalityViolation(f"unit {unit} runs agents outside its own cluster")
        dist, R, V = sched.metric.distance, sched.R, sched.V
        for a in unit.members:
            sa, pa = sched.steps[a], sched.pos[a]
            if sa != unit.step:
                raise CausalityViolation(f"agent {a} dispatched for step {unit.step} while at step {sa}")
            for b in range(sched.n):
                if b == a:
                    continue
                sb, d = sched.steps[b], dist(pa, sched.pos[b])
                if sb < sa and d <= (sa - sb + 1) * V + R:
                    raise CausalityViolation(
                        f"agent {a} dispatched at step {sa} while blocked by agent {b} at step {sb} (d={d:.2f})"
                    )
                if sb == sa and d <= R + V and b not in unit.group and sched.status[b] is not Status.DONE:
                    raise CausalityViolation(
                        f"agent {a} dispatched at step {sa} without agent {b} it is coupled with (d={d:.2f})"
                    )

    def on_commit(self, sched: Scheduler, unit: WorkUnit) -> None:
        self.commits += 1
        if not sched.keeps_invariant:
            return
        dist, R, V = sched.metric.distance, sched.R, sched.V
        for a in unit.members:
            sa, pa = sched.steps[a], sched.pos[a]
            for b in range(sched.n):
                sb = sched.steps[b]
                if sb == sa or b == a:
                    continue
                d = dist(pa, sched.pos[b])
                if d <= R + (abs(sa - sb) - 1) * V:
                    raise CausalityViolation(
                        f"after step {unit.step}: agents {a} (step {sa}) and {b} (step {sb}) are {d:.2f} apart, "
                        f"within R + (|ds| - 1) V = {R + (abs(sa - sb) - 1) * V:.2f}"
                    )
