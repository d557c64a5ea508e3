"""The memory manager: what the serving model asks when it admits a request of an agent.

The conversation with a serving engine is three calls, check-then-act as in nano-vllm's block manager:

    if mm.can_admit(agent):            # room on the GPU once unpinned state is evicted?
        adm = mm.admit(agent, now)     # pins the agent's state; says what it cost
        ...start the request no earlier than adm.ready_at, prefill adm.recompute_tokens more tokens...
    mm.release(agent, now)             # the request finished: its state may be evicted again

and, as the simulation advances, `mm.prefetch(now)` moves the state of the agents that come next onto the GPU
over the host link while the GPU computes. Who comes next is the policy's business (`next_need`), fed by an
invocation distance the scheduling side keeps current (scheduling/invocation.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from metropolis.memory.policies import EvictionPolicy
from metropolis.memory.state import StateKind, StateSpec
from metropolis.memory.tiers import Entry, Place, TierConfig, Tiers

RecomputeCost = Callable[[int], float]  # prefix tokens -> seconds of prefill, from the serving model


@dataclass(frozen=True, slots=True)
class Admission:
    """What admitting one request of `agent` at `now` cost.

    `ready_at`: when all of the agent's state is on the GPU (transfers done, room freed);
    `recompute_tokens`: prefix tokens the request's prefill must compute again, estimated at `recompute_s`
    seconds by the serving model.
    """

    agent: int
    now: float
    hit: bool
    ready_at: float
    recompute_tokens: int
    recompute_s: float
    bytes_in: int
    evicted: tuple[tuple[int, StateKind], ...]

    @property
    def wait_s(self) -> float:
        return self.ready_at - self.now


@dataclass(slots=True)
class MemoryStats:
    admissions: int = 0
    hits: int = 0
    prefetch_hits: int = 0  # hits whose state a prefetch brought in
    bytes_in: int = 0  # on demand
    bytes_prefetched: int = 0
    bytes_out: int = 0
    recompute_tokens: int = 0
    evictions: int = 0
    late: int = 0  # hits whose state was still arriving (a prefetch started too late): the request waited
    late_wait_s: float = 0.0  # how long those requests waited for it, summed

    @property
    def hit_rate(self) -> float:
        return self.hits / self.admissions if self.admissions else 0.0


class MemoryManager:
    """Ties the tiers, an eviction policy and the serving model's recompute cost together."""

    def __init__(self, tiers: Tiers | TierConfig, policy: EvictionPolicy, recompute: RecomputeCost) -> None:
        self.tiers = tiers if isinstance(tiers, Tiers) else Tiers(tiers)
        self.policy = policy
        self.recompute = recompute
        self.stats = MemoryStats()
        self._agents: dict[int, list[Entry]] = {}

    # -- setup -----------------------------------------------------------------------------------------------

    def register(self, specs: Iterable[StateSpec], place: Place = Place.NONE) -> None:
        """Add private state, starting on `place` (default: nowhere, so the first call pays in full)."""
        for spec in specs:
            entries = self._agents.setdefault(spec.agent, [])
            if any(e.spec.kind is spec.kind for e in entries):
                raise ValueError(f"agent {spec.agent} already has {spec.kind.value} state registered")
            total = sum(e.nbytes for e in entries) + spec.nbytes
            if total > self.tiers.gpu.capacity:
                raise ValueError(
                    f"agent {spec.agent}: {total} bytes of private state exceed the GPU tier "
                    f"({self.tiers.gpu.capacity} bytes)"
                )
            entry = Entry(spec, place)
            if place is Place.GPU:
                self.tiers.gpu.add(entry)
            elif place is Place.HOST:
                self.tiers.host.add(entry)
            entries.append(entry)

    def entries_of(self, agent: int) -> list[Entry]:
        try:
            return self._agents[agent]
        except KeyError:
            raise RuntimeError(f"agent {agent} has no registered state; call register() first") from None

    # -- what the serving model asks -------------------------------------------------------------------------

    def resident(self, agent: int) -> bool:
        """Is all of the agent's state on the GPU (possibly still arriving: see `Admission.ready_at`)?"""
        return all(e.place is Place.GPU for e in self.entries_of(agent))

    def can_admit(self, agent: int) -> bool:
        missing = sum(e.nbytes for e in self.entries_of(agent) if e.place is not Place.GPU)
        if missing <= self.tiers.gpu.free:
            return True
        evictable = sum(e.nbytes for e in self.tiers.gpu.entries.values() if e.pins == 0 and e.agent != agent)
        return missing <= self.tiers.gpu.free + evictable

    def admit(self, agent: int, now: float) -> Admission:
        """Bring the agent's state onto the GPU and pin it for the request; see the module docstring."""
        if not self.can_admit(agent):
            raise RuntimeError(f"agent {agent} cannot be admitted: pinned state fills the GPU; check can_admit()")
        entries = self.entries_of(agent)
        self.policy.observe(agent, now)
        for e in entries:
            e.pins += 1
        missing = [e for e in entries if e.place is not Place.GPU]
        victims = self._pick_victims(sum(e.nbytes for e in missing), now, None, agent)
        assert victims is not None  # can_admit guaranteed the room
        room_at = self._evict(victims, now)
        ready = max([now] + [e.ready_at for e in entries if e.place is Place.GPU])
        tokens = moved = 0
        for e in missing:
            if self._recompute_is_cheaper(e, room_at):
                self.tiers.materialize(e, room_at)
                tokens += e.spec.tokens or 0
            else:
                moved += e.nbytes
                ready = max(ready, self.tiers.load(e, room_at))
        self._count(entries, hit=not missing, tokens=tokens)
        if not missing and ready > now:
            self.stats.late += 1
            self.stats.late_wait_s += ready - now
        self.stats.bytes_in += moved
        for e in entries:
            e.last_access = now
        return Admission(
            agent,
            now,
            not missing,
            ready,
            tokens,
            self.recompute(tokens) if tokens else 0.0,
            moved,
            tuple(v.spec.key for v in victims),
        )

    def release(self, agent: int, now: float) -> None:
        for e in self.entries_of(agent):
            if e.pins == 0:
                raise RuntimeError(f"agent {agent} released more often than admitted")
            e.pins -= 1
            e.last_access = now

    # -- what the runtime asks as the simulation advances ----------------------------------------------------

    def prefetch(self, now: float, limit: int = 4) -> list[int]:
        """Start moving the state of up to `limit` agents needed soonest onto the GPU; returns those agents.

        A prefetch only evicts entries the policy needs strictly later than the agent it brings, so it never
        pushes out something more urgent. A KV prefix found nowhere is left for the request to recompute; weights
        found nowhere are read from disk. A prefetch still under way when the request comes makes it wait
        (`MemoryStats.late`).
        """
        need = self.policy.next_need
        candidates = []
        for agent, entries in self._agents.items():
            if any(self._loadable(e) for e in entries):
                n = need(agent, now)
                if n is None:
                    return []  # this policy does not prefetch
                if n != float("inf"):
                    candidates.append((n, agent))
        started = []
        for n, agent in heapq.nsmallest(limit, candidates):
            loads = [e for e in self._agents[agent] if self._loadable(e)]
            victims = self._pick_victims(sum(e.nbytes for e in loads), now, n, agent)
            if victims is None:
                continue
            room_at = self._evict(victims, now)
            for e in loads:
                self.tiers.load(e, room_at)
                e.prefetched = True
                e.last_access = now
                self.stats.bytes_prefetched += e.nbytes
            started.append(agent)
        return started

    # -- internals -------------------------------------------------------------------------------------------

    def _loadable(self, e: Entry) -> bool:
        return e.place is Place.HOST or (e.place is Place.NONE and e.spec.kind.on_disk)

    def _recompute_is_cheaper(self, e: Entry, start: float) -> bool:
        if e.spec.kind is not StateKind.KV_PREFIX:
            return False
        done = self.tiers.load_time(e, start)
        return done is None or self.recompute(e.spec.tokens or 0) < done - start

    def _pick_victims(self, needed: int, now: float, below: float | None, agent: int) -> list[Entry] | None:
        """Unpinned GPU entries to evict, smallest eviction key first, until `needed` bytes are free; None if short.

        With `below`, only entries whose agent the policy needs strictly later than `below` qualify
        (prefetch).
        """
        gpu = self.tiers.gpu
        short = needed - gpu.free
        if short <= 0:
            return []
        pool = [e for e in gpu.entries.values() if e.pins == 0 and e.agent != agent]
        if below is not None:
            pool = [e for e in pool if (self.policy.next_need(e.agent, now) or 0.0) > below]
        pool.sort(key=lambda e: self.policy.eviction_key(e, now))
        victims = []
        for e in pool:
            if short <= 0:
                break
            victims.append(e)
            short -= e.nbytes
        return victims if short <= 0 else None

    def _evict(self, victims: list[Entry], now: float) -> float:
        """Evict `victims` to the host (making room there by eviction key) or drop them; when their room is
        free."""
        room_at = now
        for e in victims:
            self._make_host_room(e, now)
            end = self.tiers.offload(e, now)
            if e.place is Place.HOST:
                self.stats.bytes_out += e.nbytes
            room_at = max(room_at, end)
            self.stats.evictions += 1
        return room_at

    def _make_host_room(self, incoming: Entry, now: float) -> None:
        """Drop host entries the policy ranks below `incoming` until it fits; if they do not suffice, drop
        none."""
        host = self.tiers.host
        if not self.tiers.config.hosts(incoming.spec.kind):
            return
        if incoming.nbytes <= host.free or incoming.nbytes > host.capacity:
            return
        mine = self.policy.eviction_key(incoming, now)
        pool = sorted(host.entries.values(), key=lambda e: self.policy.eviction_key(e, now))
        drop, short = [], incoming.nbytes - host.free
        for e in pool:
            if short <= 0 or not self.policy.eviction_key(e, now) < mine:
                break
            drop.append(e)
            short -= e.nbytes
        if short <= 0:
            for e in drop:
                self.tiers.drop_from_host(e)

    def _count(self, entries: list[Entry], *, hit: bool, tokens: int) -> None:
        s = self.stats
        s.admissions += 1
        s.recompute_tokens += tokens
        if hit:
            s.hits += 1
            if any(e.prefetched for e in entries):
                s.prefetch_hits += 1
        for e in entries:
            e.prefetched = False
