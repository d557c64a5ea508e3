"""Agent-aware serving memory: per-agent private state, GPU/host tiers, eviction and prefetch (ScaleSim)."""

from metropolis.memory.manager import Admission, MemoryManager, MemoryStats
from metropolis.memory.policies import (
    BeladyPolicy,
    EvictionPolicy,
    InvocationDistancePolicy,
    LRUPolicy,
    eviction_policy_names,
    make_eviction_policy,
)
from metropolis.memory.state import (
    LLAMA3_8B,
    ModelShape,
    StateKind,
    StateSpec,
    agent_state,
    kv_bytes_per_token,
    lora_bytes,
)
from metropolis.memory.tiers import Entry, Link, Place, Tier, TierConfig, Tiers
from metropolis.memory.tracesim import HitStats, exact_distances, simulate_hits

__all__ = [
    "LLAMA3_8B",
    "Admission",
    "BeladyPolicy",
    "Entry",
    "EvictionPolicy",
    "HitStats",
    "InvocationDistancePolicy",
    "LRUPolicy",
    "Link",
    "MemoryManager",
    "MemoryStats",
    "ModelShape",
    "Place",
    "StateKind",
    "StateSpec",
    "Tier",
    "TierConfig",
    "Tiers",
    "agent_state",
    "eviction_policy_names",
    "exact_distances",
    "kv_bytes_per_token",
    "lora_bytes",
    "make_eviction_policy",
    "simulate_hits",
]
