"""Wiring agent-aware serving memory to a run: the engine core knows nothing of it, so whoever turns it on (the
`run` command, the memory benchmarks) attaches these two listeners, and `run_memory` sets it up the way
`metropolis run --memory POLICY --fraction F` does."""

from __future__ import annotations

import math
from collections.abc import Callable

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.llm.serving.agentmem import AgentMemory
from metropolis.memory.manager import MemoryStats
from metropolis.memory.state import LLAMA3_8B, agent_state
from metropolis.memory.tiers import TierConfig
from metropolis.registry import check_name
from metropolis.scheduling.invocation import InvocationDistance


def track_invocation_distance(sim: Simulation, *, spatial: bool = False) -> InvocationDistance:
    """Every agent's invocation distance, kept current from the policy's waits and the plans agents publish."""
    distance = InvocationDistance(sim.world, sim.scheduler, spatial=spatial)
    sim.plan_listeners.append(distance.on_plan)
    return distance


class PrefetchOnCommit:
    """Calls `prefetch` whenever agents commit a step: who comes next may have changed."""

    def __init__(self, prefetch: Callable[[], object]) -> None:
        self.prefetch = prefetch

    def on_step(self, record: StepRecord) -> None:
        self.prefetch()

    def on_call(self, record: CallRecord) -> None:
        """Calls change no distance."""


RUN_MEMORY_POLICIES = ("lru", "invocation-distance")
PREFIX_TOKENS = 600  # each agent's cached prompt prefix: persona and retrieved memories of a ~640-token prompt


def gpu_tier_bytes(total: int, agents: int, fraction: float, replicas: int) -> int:
    """One replica's GPU tier: its even share of `fraction` of all agents' state, but at least one agent's."""
    return max(total // agents, math.floor(total * fraction / replicas))


def run_memory(
    sim: Simulation,
    policy: str,
    fraction: float,
    replicas: int,
    *,
    prefix_tokens: int = PREFIX_TOKENS,
    pinned: Callable[[int], bool] | None = None,
) -> AgentMemory:
    """Serving memory for a run: every agent's KV prefix, a GPU tier per replica that holds `fraction` of them
    all, a host tier for the rest (evicted prefixes are copied there, not recomputed), prefetch of the agents that
    come next under invocation distance. The caller hands it to the serving model's `Cluster(memory=...)` and
    attaches `PrefetchOnCommit(cluster.prefetch)` to the simulation. `pinned(agent)`: agents a person waits for
    (the player's horizon, runtime/horizon.py): under invocation distance they count as calling next (distance 0),
    so they are the last evicted and the first prefetched."""
    check_name(policy, RUN_MEMORY_POLICIES, "serving-memory policy")
    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be within (0, 1], got {fraction}")
    agents = len(sim.agents)
    total = agents * sum(s.nbytes for s in agent_state(0, prefix_tokens, LLAMA3_8B, None))
    tiers = TierConfig(gpu_bytes=gpu_tier_bytes(total, agents, fraction, replicas), host_bytes=total)
    distance: Callable[[int], float] | None = None
    if policy == "invocation-distance":
        distance = track_invocation_distance(sim, spatial=True).distance
    if distance is not None and pinned is not None:
        distance = _pinned_first(distance, pinned)
    return AgentMemory(tiers, prefix_tokens, policy, distance, prefetch=4 if distance is not None else 0)


def _pinned_first(distance: Callable[[int], float], pinned: Callable[[int], bool]) -> Callable[[int], float]:
    def pinned_distance(agent: int) -> float:
        return 0.0 if pinned(agent) else distance(agent)

    return pinned_distance


def memory_lines(stats: MemoryStats, policy: str, fraction: float) -> list[str]:
    """The summary lines `metropolis run --memory` prints."""
    gb = 1e9
    return [
        f"serving memory   {policy}, GPU holds {fraction:.0%} of the agents' KV prefixes",
        f"  hit rate       {stats.hit_rate:.1%} ({stats.hits:,} of {stats.admissions:,} calls; "
        f"{stats.prefetch_hits:,} brought in by prefetch)",
        f"  moved          {stats.bytes_in / gb:.2f} GB on demand, {stats.bytes_prefetched / gb:.2f} GB prefetched",
        f"  evicted        {stats.bytes_out / gb:.2f} GB to host; {stats.recompute_tokens:,} prefix tokens recomputed",
    ]
