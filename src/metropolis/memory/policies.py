"""Eviction policies behind one narrow method, as in SGLang: `eviction_key(entry, now)` returns a sort key.

(SGLang calls that method `get_priority`; here "priority" is only ever the number a request carries to the serving
engine, so the eviction order is called a key.)

Convention: the entry with the SMALLEST key is evicted first (SGLang's LRU key is the last access time, so the
oldest goes first). Everything else (what is pinned, how many bytes to free, where evicted state goes) belongs
to the manager, not to a policy.

A policy that also knows when agents come next (invocation distance, Belady) answers `next_need(agent, now)`;
the manager prefetches the agents with the smallest values. `observe` tells a policy an access happened, which
only the offline Belady bound needs, to move its cursor through the recorded future.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import ClassVar

from metropolis.memory.tiers import Entry
from metropolis.registry import lookup

SortKey = tuple[float, ...]
Distance = Callable[[int], float]  # agent id -> invocation distance in steps (math.inf: unknown or done)


class EvictionPolicy(ABC):
    name: ClassVar[str]

    @abstractmethod
    def eviction_key(self, entry: Entry, now: float) -> SortKey:
        """Sort key of an evictable entry: the smallest is evicted first."""

    def next_need(self, agent: int, now: float) -> float | None:
        """How soon `agent` is needed again (smaller is sooner), or None if this policy does not prefetch."""
        return None

    def observe(self, agent: int, now: float) -> None:  # noqa: B027 - optional hook, most policies ignore it
        """`agent` was accessed at `now`."""


class LRUPolicy(EvictionPolicy):
    """What SGLang's radix cache and vLLM's prefix cache do: evict the least recently used."""

    name = "lru"

    def eviction_key(self, entry: Entry, now: float) -> SortKey:
        return (entry.last_access,)


class InvocationDistancePolicy(EvictionPolicy):
    """ScaleSim: evict the agent whose next LLM call is furthest away; ties go to the least recently used.

    `distance(agent)` is the current estimate in steps (math.inf when nothing is known or the agent is done).
    """

    name = "invocation-distance"

    def __init__(self, distance: Distance) -> None:
        self.distance = distance

    def eviction_key(self, entry: Entry, now: float) -> SortKey:
        return (-self.distance(entry.agent), entry.last_access)

    def next_need(self, agent: int, now: float) -> float | None:
        return self.distance(agent)


class BeladyPolicy(EvictionPolicy):
    """Belady's MIN: evict the agent whose next access in the recorded future is furthest (never: first).

    Built from the future as (key, agent) pairs, where the key is the time or the index the manager is told as
    `now`. An access at `now` consumes that agent's recorded accesses up to `now`; for other agents the next
    use is their first recorded access at or after `now`. Optimal hit count for equal-sized entries.
    """

    name = "belady"

    def __init__(self, future: Iterable[tuple[float, int]]) -> None:
        self._uses: dict[int, list[float]] = {}
        for key, agent in future:
            self._uses.setdefault(agent, []).append(key)
        for keys in self._uses.values():
            keys.sort()
        self._cursor: dict[int, int] = dict.fromkeys(self._uses, 0)

    def next_use(self, agent: int, now: float) -> float:
        keys = self._uses.get(agent)
        if keys is None:
            return math.inf
        i = self._cursor[agent]
        if i < len(keys) and keys[i] < now:
            i = self._cursor[agent] = bisect_left(keys, now, lo=i)
        return keys[i] if i < len(keys) else math.inf

    def observe(self, agent: int, now: float) -> None:
        keys = self._uses.get(agent)
        if keys is not None:
            self._cursor[agent] = bisect_right(keys, now, lo=self._cursor[agent])

    def eviction_key(self, entry: Entry, now: float) -> SortKey:
        return (-self.next_use(entry.agent, now), entry.last_access)

    def next_need(self, agent: int, now: float) -> float | None:
        return self.next_use(agent, now) - now


EvictionPolicyFactory = Callable[[Distance | None, Iterable[tuple[float, int]] | None], EvictionPolicy]


def _lru(distance: Distance | None, future: Iterable[tuple[float, int]] | None) -> EvictionPolicy:
    return LRUPolicy()


def _invocation_distance(distance: Distance | None, future: Iterable[tuple[float, int]] | None) -> EvictionPolicy:
    if distance is None:
        raise ValueError("policy 'invocation-distance' needs an invocation-distance estimator: pass distance=...")
    return InvocationDistancePolicy(distance)


def _belady(distance: Distance | None, future: Iterable[tuple[float, int]] | None) -> EvictionPolicy:
    if future is None:
        raise ValueError("policy 'belady' needs the recorded future accesses: pass future=[(time, agent), ...]")
    return BeladyPolicy(future)


EVICTION_POLICIES: dict[str, EvictionPolicyFactory] = {
    "lru": _lru,
    "invocation-distance": _invocation_distance,
    "scalesim": _invocation_distance,
    "belady": _belady,
}


def eviction_policy_names() -> list[str]:
    return list(EVICTION_POLICIES)


def make_eviction_policy(
    name: str, *, distance: Distance | None = None, future: Iterable[tuple[float, int]] | None = None
) -> EvictionPolicy:
    """An eviction policy by name; `distance` feeds invocation distance, `future` feeds Belady."""
    return lookup(EVICTION_POLICIES, name, "eviction policy")(distance, future)
