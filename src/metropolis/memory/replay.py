"""Belady's MIN in a closed loop: the future recorded in one run, followed agent by agent in the next.

In the serving model the order of admissions depends on the policy (a miss delays a request, which reorders
what follows), so the recorded future cannot be keyed by time or by global position. What does not change
between runs of a deterministic simulation is each agent's own sequence of calls. So the policy counts each
agent's accesses: agent a's next use is the recorded position of its (n_a + 1)-th access, and the agent whose
next recorded use is furthest away is evicted first. On a run that admits in the recorded order this is exactly
`BeladyPolicy`; otherwise it is the offline bound as closely as a replay can follow it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from metropolis.memory.policies import EvictionPolicy, SortKey
from metropolis.memory.tiers import Entry


class ReplayBeladyPolicy(EvictionPolicy):
    """MIN over `recorded`, the agents in the order a previous run accessed them (one replica's sequence)."""

    name = "belady"

    def __init__(self, recorded: Sequence[int]) -> None:
        self._uses: dict[int, list[int]] = {}
        for i, agent in enumerate(recorded):
            self._uses.setdefault(agent, []).append(i)
        self._done: dict[int, int] = {}  # accesses seen per agent
        self._position = 0  # recorded position of the latest access seen

    def next_use(self, agent: int) -> float:
        uses = self._uses.get(agent)
        n = self._done.get(agent, 0)
        if uses is None or n >= len(uses):
            return math.inf
        return float(uses[n])

    def observe(self, agent: int, now: float) -> None:
        nxt = self.next_use(agent)
        if nxt != math.inf:
            self._position = max(self._position, int(nxt))
        self._done[agent] = self._done.get(agent, 0) + 1

    def eviction_key(self, entry: Entry, now: float) -> SortKey:
        return (-self.next_use(entry.agent), entry.last_access)

    def next_need(self, agent: int, now: float) -> float | None:
        return self.next_use(agent) - self._position
