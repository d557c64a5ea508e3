"""`metropolis`: conservative out-of-order execution (the AI Metropolis rules).

- Coupled: s_A == s_B and d(A, B) <= R + V. Coupled agents form one cluster and step together.
- Blocked: A is blocked by B if s_B < s_A and d(A, B) <= (s_A - s_B + 1) * V + R.
- A cluster is ready when none of its members is blocked; ready clusters run lowest step first.

Dependencies are tracked incrementally. A waiting agent only gains blockers when it arrives at a new step: an agent
behind it that advances one step moves at most V while the blocking radius shrinks by V, so it can never start to
block. So each commit costs a radius query around the agents that moved plus a re-check of the agents they blocked,
not a pass over all N agents.

The same radius query finds the agent's coupled partners: agents waiting at the same step within R + V. Positions
only change with steps, so such an edge holds until both are dispatched, and a cluster is a walk over edges, with
no further spatial query.
"""

from __future__ import annotations

import heapq
import itertools

from metropolis.scheduling.base import Scheduler, Status
from metropolis.scheduling.unit import WorkUnit


class MetropolisScheduler(Scheduler):
    name = "metropolis"
    keeps_invariant = True

    def _start(self) -> None:
        n = self.n
        self.blocked_by: list[set[int]] = [set() for _ in range(n)]
        self.blocks: list[set[int]] = [set() for _ in range(n)]
        self.coupled: list[set[int]] = [set() for _ in range(n)]
        self._heap: list[tuple[int, int, int]] = []
        self._seq = itertools.count()
        if self.until > 0:
            for agent in range(n):
                self._scan(agent)
                self._push(agent)

    def _push(self, agent: int) -> None:
        key = self.steps[agent] if self.priority else 0
        heapq.heappush(self._heap, (key, next(self._seq), agent))

    def pop_ready(self) -> WorkUnit | None:
        heap, status, steps, blocked_by = self._heap, self.status, self.steps, self.blocked_by
        while heap:
            _, _, seed = heapq.heappop(heap)
            if status[seed] is not Status.WAITING or blocked_by[seed]:
                continue  # stale: dispatched with another seed's cluster, or blocked since
            cluster = self.cluster_of(seed)
            if any(blocked_by[a] for a in cluster):
                continue  # the blocked member is pushed again when it is released
            return self._dispatch(steps[seed], cluster, cluster)
        return None

    def _after_complete(self, unit: WorkUnit) -> None:
        steps, blocked_by, blocks = self.steps, self.blocked_by, self.blocks
        pos, dist, R, V = self.pos, self.metric.distance, self.R, self.V
        released: list[int] = []
        for j in unit.members:
            sj, pj = steps[j], pos[j]
            # Re-check the agents j blocked: it is one step further on and may have moved.
            if blocks[j]:
                keep = set()
                for a in blocks[j]:
                    gap = steps[a] - sj
                    if gap > 0 and dist(pos[a], pj) <= (gap + 1) * V + R:
                        keep.add(a)
                        continue
                    waiting_on = blocked_by[a]
                    waiting_on.discard(j)
                    if not waiting_on:
                        released.append(a)
                blocks[j] = keep
        coupled = self.coupled
        for j in unit.members:
            coupled[j].clear()  # its old partners were this unit's members, all one step on now
        for j in unit.members:
            if self.status[j] is Status.WAITING:
                self._scan(j)
                if not blocked_by[j]:
                    self._push(j)
        for a in released:
            if self.status[a] is Status.WAITING:
                self._push(a)

    def cluster_of(self, seed: int) -> list[int]:
        """The coupled cluster of `seed`, walked over the coupling edges kept since each agent arrived."""
        coupled = self.coupled
        members = [seed]
        seen = {seed}
        for a in members:
            for b in coupled[a]:
                if b not in seen:
                    seen.add(b)
                    members.append(b)
        members.sort()
        return members

    def _scan(self, a: int) -> None:
        """On arrival at a new step: every agent behind `a` close enough to still change what `a` will observe
        (its blockers), and every agent waiting at the same step within R + V (its coupled partners)."""
        steps, pos, dist, R, V, status = self.steps, self.pos, self.metric.distance, self.R, self.V, self.status
        sa, pa = steps[a], pos[a]
        blockers, blocks, coupled = self.blocked_by[a], self.blocks, self.coupled
        couple = self.couple_radius
        for b in self.index.near(pa, (sa - self._gvt + 1) * V + R if sa > self._gvt else couple):
            sb = steps[b]
            if sb < sa:
                if dist(pa, pos[b]) <= (sa - sb + 1) * V + R:
                    blockers.add(b)
                    blocks[b].add(a)
            elif sb == sa and b != a and status[b] is Status.WAITING and dist(pa, pos[b]) <= couple:
                coupled[a].add(b)
                coupled[b].add(a)
