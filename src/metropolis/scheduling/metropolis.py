"""`metropolis`: conservative out-of-order execution (the AI Metropolis rules).

- Coupled: s_A == s_B and d(A, B) <= R + V. Coupled agents form one cluster and step together.
- Blocked: A is blocked by B if s_B < s_A and d(A, B) <= (m + 1) * V + R, where m = s_A - s_B is the number of
  steps B may move before it reaches A's step, less those it promised to stand still (`AgentView.moves`).
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

from mypy_extensions import mypyc_attr

from metropolis.scheduling.base import INF, Scheduler
from metropolis.scheduling.rules import block_radius
from metropolis.scheduling.table import Status
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.metrics import near_distance


@mypyc_attr(allow_interpreted_subclasses=True)
class MetropolisScheduler(Scheduler):
    name = "metropolis"
    keeps_invariant = True
    dispatches_clear = True  # a dispatched agent has no blockers: none behind may reach it (`block_radius`)

    def _start(self) -> None:
        n = self.n
        self.blocked_by: list[set[int]] = [set() for _ in range(n)]
        self.blocks: list[set[int]] = [set() for _ in range(n)]
        self.coupled: list[set[int]] = [set() for _ in range(n)]
        self._heap: list[tuple[int, int, int]] = []
        self._seq = -1  # the last tie-breaker given out (an int: `next()` on a counter is a Python call compiled)
        # Every pair measured here was found by the table's index (blockers stay in the scanning agent's
        # neighbourhood): the metric's cheaper equal for such pairs, where it has one.
        self._dist = near_distance(self.metric)
        if self.until > 0:
            for agent in range(n):
                self._scan(agent)
                self._push(agent)

    def _push(self, agent: int) -> None:
        key = self.table.step[agent] if self.priority else 0
        self._seq = seq = self._seq + 1
        heapq.heappush(self._heap, (key, seq, agent))

    def pop_ready(self) -> WorkUnit | None:
        heap, status, steps, blocked_by = self._heap, self.table.status, self.table.step, self.blocked_by
        coupled = self.coupled
        while heap:
            _, _, seed = heapq.heappop(heap)
            if status[seed] is not Status.WAITING or blocked_by[seed]:
                continue  # stale: dispatched with another seed's cluster, or blocked since
            if not coupled[seed]:  # most clusters are the seed alone: no walk
                alone = (seed,)
                return WorkUnit(steps[seed], alone, alone)
            unit = self._cluster_unit(seed, self.cluster_of(seed))
            if unit is None:
                continue
            return unit
        return None

    def _cluster_unit(self, seed: int, cluster: list[int]) -> WorkUnit | None:
        """The unit `seed`, ready, runs in with its coupled partners: their whole cluster, unless a member is
        blocked (None: the blocked member is pushed again when it is released)."""
        blocked_by = self.blocked_by
        if any(blocked_by[a] for a in cluster):
            return None
        members = tuple(cluster)
        return WorkUnit(self.table.step[seed], members, members)

    def wait_steps(self, agent: int) -> float:
        """Ready or running: 0; blocked behind agents k steps back: k.

        k is the largest gap to a blocker: a blocker at our step can no longer block, so k steps of it always
        release us. It may release us sooner by walking away, so k is the patient estimate, not a bound.
        """
        status = self.table.status[agent]
        if status is Status.DONE:
            return INF
        blockers = self.blocked_by[agent]
        if status is Status.RUNNING or not blockers:
            return 0.0
        steps = self.table.step
        mine = steps[agent]
        return float(max(mine - steps[b] for b in blockers))

    def complete(self, unit: WorkUnit) -> None:
        steps, blocked_by, blocks = self.table.step, self.blocked_by, self.blocks
        pos, dist, R, V = self.table.pos, self._dist, self.R, self.V
        released: list[int] = []
        for j in unit.members:
            sj, pj = steps[j], pos[j]
            # Re-check the agents j blocked: it is one step further on and may have moved.
            if blocks[j]:
                keep = set()
                moved_from = max(sj, self.table.still_until[j])  # `table.moves(j, s)` is s - this, at least 0
                for a in blocks[j]:
                    sa = steps[a]
                    if sa > sj and dist.between(pos[a], pj) <= block_radius(max(0, sa - moved_from), R, V):
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
        status = self.table.status
        for j in unit.members:
            if status[j] is Status.WAITING:
                self._scan(j)
                if not blocked_by[j]:
                    self._push(j)
        for a in released:
            if status[a] is Status.WAITING:
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
        table = self.table
        steps, pos, status = table.step, table.pos, table.status
        dist, R, V = self._dist, self.R, self.V
        sa, pa = steps[a], pos[a]
        blockers, blocks, coupled = self.blocked_by[a], self.blocks, self.coupled
        couple, still, waiting = self.couple_radius, table.still_until, Status.WAITING
        gvt = table.gvt()
        for b in table.near(pa, block_radius(sa - gvt, R, V) if sa > gvt else couple):
            sb = steps[b]
            if sb < sa:
                st = still[b]
                moves = sa - (sb if sb >= st else st)  # `table.moves(b, sa)`, inlined on the hottest loop
                if dist.between(pa, pos[b]) <= block_radius(moves if moves > 0 else 0, R, V):
                    blockers.add(b)
                    blocks[b].add(a)
            elif sb == sa and b != a and status[b] is waiting and dist.between(pa, pos[b]) <= couple:
                coupled[a].add(b)
                coupled[b].add(a)
