"""Trace-driven hit-rate simulation: compare eviction policies on an access sequence without the serving model.

An access is (step, agent): one LLM call of `agent` at simulation step `step`, in the order the serving
engine admits them. The replay runs the real `MemoryManager` with a GPU tier of `capacity` bytes over a host
tier that holds everything, so every miss is a host-to-GPU transfer; `now` is the access index, which Belady's
recorded future and the exact distances are keyed by.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from metropolis.memory.manager import MemoryManager
from metropolis.memory.policies import EvictionPolicy, make_eviction_policy
from metropolis.memory.state import StateKind, StateSpec
from metropolis.memory.tiers import Place, TierConfig

Access = tuple[int, int]  # (step, agent)
TraceDistance = Callable[[int, int], float]  # (agent, access index) -> invocation distance


@dataclass(frozen=True, slots=True)
class HitStats:
    policy: str
    accesses: int
    hits: int
    prefetch_hits: int
    bytes_in: int  # moved on demand, while a request waited
    bytes_prefetched: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.accesses if self.accesses else 0.0

    @property
    def bytes_moved(self) -> int:
        return self.bytes_in + self.bytes_prefetched


def exact_distances(accesses: Sequence[Access], unit: str = "step") -> TraceDistance:
    """Invocation distances read off the future itself: the best any estimator can do.

    `unit="step"`: steps until the agent's next access (what a real estimator predicts); `unit="index"`:
    accesses until it, which orders agents exactly as Belady does.
    """
    if unit not in ("step", "index"):
        raise ValueError(f"unit must be 'step' or 'index', got {unit!r}")
    uses: dict[int, list[int]] = {}
    for i, (_, agent) in enumerate(accesses):
        uses.setdefault(agent, []).append(i)

    def distance(agent: int, now: int) -> float:
        idx = uses.get(agent, [])
        j = bisect_left(idx, now)
        if j == len(idx):
            return math.inf
        nxt = idx[j]
        return float(nxt - now) if unit == "index" else float(accesses[nxt][0] - accesses[now][0])

    return distance


def simulate_hits(
    accesses: Sequence[Access],
    policy: str | EvictionPolicy,
    capacity: int,
    sizes: Mapping[int, int],
    distances: TraceDistance | None = None,
    *,
    prefetch: int = 0,
) -> HitStats:
    """Replay `accesses`; with `prefetch` > 0 the policy prefetches that many agents at every new step."""
    _check_inputs(accesses, capacity, sizes)
    clock = [0]
    if isinstance(policy, str):
        dist = distances
        policy = make_eviction_policy(
            policy,
            distance=None if dist is None else (lambda agent: dist(agent, clock[0])),
            future=[(i, a) for i, (_, a) in enumerate(accesses)],
        )
    tiers = TierConfig(gpu_bytes=capacity, host_bytes=sum(sizes.values()))
    mm = MemoryManager(tiers, policy, recompute=lambda tokens: math.inf)
    for agent, nbytes in sizes.items():
        mm.register([StateSpec(agent, StateKind.KV_PREFIX, nbytes, tokens=1)], Place.HOST)
    last_step = None
    for i, (step, agent) in enumerate(accesses):
        clock[0] = i
        if prefetch and step != last_step:
            mm.prefetch(i, limit=prefetch)
        last_step = step
        mm.admit(agent, i)
        mm.release(agent, i)
    s = mm.stats
    return HitStats(policy.name, s.admissions, s.hits, s.prefetch_hits, s.bytes_in, s.bytes_prefetched)


def _check_inputs(accesses: Sequence[Access], capacity: int, sizes: Mapping[int, int]) -> None:
    if not accesses:
        raise ValueError("no accesses to simulate")
    missing = {a for _, a in accesses} - sizes.keys()
    if missing:
        raise ValueError(f"no state size for agents {sorted(missing)[:5]}")
    if max(sizes.values()) > capacity:
        raise ValueError(f"GPU capacity {capacity} is below the largest agent state ({max(sizes.values())} bytes)")
