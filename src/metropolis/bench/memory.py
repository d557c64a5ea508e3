"""`metropolis bench memory`: eviction and prefetch policies for agents' private serving state, side by side.

For every setting (GPU tier holding `fraction` of all agents' private state; with or without a LoRA adapter per
agent; `lockstep` or `metropolis` scheduling) the same simulation runs in virtual time once per policy:

- `lru`: evict the least recently used, load on demand (what SGLang's radix cache and vLLM's prefix cache do,
  with a host tier under them);
- `invocation-distance`: ScaleSim, evict the agent whose next call is furthest and prefetch the nearest ones
  after every engine segment and scheduler commit, from `Simulation.invocation_distance`;
- `belady`: MIN from the recorded future: the accesses of the invocation-distance run, replayed agent by agent
  (`ReplayBeladyPolicy`), with the same prefetch;
- `ideal`: a GPU tier that holds everything (every call after an agent's first hits): the floor on time.

Each row reports simulated seconds, hit rate and bytes moved; ratios compare within a setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from metropolis.bench.memory_workload import bursty_simulation
from metropolis.engine.simulation import Simulation
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.llm.serving.agentmem import AgentMemory
from metropolis.memory.policies import EvictionPolicy
from metropolis.memory.replay import ReplayBeladyPolicy
from metropolis.memory.state import LLAMA3_8B, agent_state
from metropolis.memory.tiers import TierConfig
from metropolis.runtime import Environment, VirtualRuntime

POLICIES = ("lru", "invocation-distance", "belady", "ideal")
SimulationFactory = Callable[[str], Simulation]  # scheduler name -> a fresh simulation


@dataclass(frozen=True, slots=True)
class MemoryBenchConfig:
    agents: int = 25
    steps: int = 360  # one simulated hour of 10 s steps
    fractions: tuple[float, ...] = (0.10, 0.25)
    lora_ranks: tuple[int | None, ...] = (None, 16)
    schedulers: tuple[str, ...] = ("lockstep", "metropolis")
    preset: str = "l4-llama3-8b"
    prefix_tokens: int = 600  # the cached part of a ~640-token prompt: persona and retrieved memories
    host_fraction: float = 1.0  # the host tier holds this share of all state (0: evicted KV is dropped)
    h2d_bandwidth: float = 25e9  # PCIe 4.0 x16 in practice
    disk_bandwidth: float = 2e9
    prefetch: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.agents < 1 or self.steps < 1:
            raise ValueError(f"agents and steps must be >= 1, got {self.agents} and {self.steps}")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ValueError(f"GPU fractions must be within (0, 1], got {f}")
        if not self.host_fraction >= 0:
            raise ValueError(f"host_fraction must be >= 0, got {self.host_fraction}")

    def settings(self) -> Iterator[tuple[str, float, int | None]]:
        for scheduler in self.schedulers:
            for rank in self.lora_ranks:
                for fraction in self.fractions:
                    yield scheduler, fraction, rank


@dataclass(frozen=True, slots=True)
class MemoryBenchRow:
    scheduler: str
    fraction: float
    lora_rank: int | None
    policy: str
    sim_seconds: float
    llm_calls: int
    hit_rate: float
    prefetch_hit_rate: float
    bytes_on_demand: int
    bytes_prefetched: int
    bytes_offloaded: int
    recompute_tokens: int

    @property
    def bytes_moved(self) -> int:
        return self.bytes_on_demand + self.bytes_prefetched + self.bytes_offloaded

    @property
    def setting(self) -> tuple[str, float, int | None]:
        return (self.scheduler, self.fraction, self.lora_rank)


def total_state_bytes(cfg: MemoryBenchConfig, rank: int | None) -> int:
    return sum(s.nbytes for a in range(cfg.agents) for s in agent_state(a, cfg.prefix_tokens, LLAMA3_8B, rank))


def memory_setup(
    cfg: MemoryBenchConfig,
    fraction: float,
    rank: int | None,
    policy: str | Callable[[int], EvictionPolicy],
    sim: Simulation,
) -> AgentMemory:
    total = total_state_bytes(cfg, rank)
    per_agent = total // cfg.agents
    tiers = TierConfig(
        gpu_bytes=max(per_agent, math.floor(total * fraction)),
        host_bytes=math.floor(total * cfg.host_fraction),
        h2d_bandwidth=cfg.h2d_bandwidth,
        d2h_bandwidth=cfg.h2d_bandwidth,
        disk_bandwidth=cfg.disk_bandwidth,
    )
    distance = sim.track_distances().distance
    prefetch = 0 if policy == "lru" else cfg.prefetch
    return AgentMemory(tiers, cfg.prefix_tokens, policy, distance, rank, LLAMA3_8B, prefetch)


def run_policy(
    cfg: MemoryBenchConfig,
    make_sim: SimulationFactory,
    setting: tuple[str, float, int | None],
    policy: str,
    recorded: list[list[int]] | None = None,
) -> tuple[MemoryBenchRow, list[list[int]]]:
    """One run; returns its row and each replica's admitted agents in order (the future Belady replays)."""
    scheduler, fraction, rank = setting
    sim = make_sim(scheduler)
    env = Environment()
    name: str | Callable[[int], EvictionPolicy] = policy
    if policy == "belady":
        if recorded is None:
            raise RuntimeError("the belady run needs the accesses recorded by an earlier run")
        name = lambda replica: ReplayBeladyPolicy(recorded[replica])  # noqa: E731
    frac = 1.0 if policy == "ideal" else fraction
    setup = memory_setup(cfg, frac, rank, "lru" if policy == "ideal" else name, sim)
    cluster = Cluster(env, preset(cfg.preset), memory=setup)
    sim.commit_hooks.append(cluster.prefetch)
    report = VirtualRuntime(sim, env, VirtualLLM(env, cluster)).run()
    stats = cluster.memory_stats()
    assert stats is not None
    row = MemoryBenchRow(
        scheduler,
        fraction,
        rank,
        policy,
        report.duration,
        report.llm_calls,
        stats.hit_rate,
        stats.prefetch_hits / stats.admissions if stats.admissions else 0.0,
        stats.bytes_in,
        stats.bytes_prefetched,
        stats.bytes_out,
        stats.recompute_tokens,
    )
    return row, [m.accesses for m in cluster.memories]


def run_memory_bench(
    cfg: MemoryBenchConfig,
    make_sim: SimulationFactory | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[MemoryBenchRow]:
    """Every setting under every policy; `make_sim` defaults to the bursty development workload."""
    if make_sim is None:
        make_sim = lambda scheduler: bursty_simulation(cfg.agents, cfg.steps, scheduler, cfg.seed)  # noqa: E731
    rows = []
    for setting in cfg.settings():
        recorded = None
        for policy in POLICIES:
            if progress is not None:
                progress(f"{setting[0]}, {setting[1]:.0%} of state on GPU, LoRA {setting[2]}: {policy}")
            row, accesses = run_policy(cfg, make_sim, setting, policy, recorded)
            if policy == "invocation-distance":
                recorded = accesses
            rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class Comparison:
    """One setting's verdict: ID's speedup over LRU and its hit rate as a share of Belady's."""

    setting: tuple[str, float, int | None]
    speedup_over_lru: float
    hit_share_of_belady: float
    time_share_of_ideal: float


def compare(rows: list[MemoryBenchRow]) -> list[Comparison]:
    by: dict[tuple[str, float, int | None], dict[str, MemoryBenchRow]] = {}
    for r in rows:
        by.setdefault(r.setting, {})[r.policy] = r
    out = []
    for setting, p in by.items():
        lru, idp, bel, ideal = p["lru"], p["invocation-distance"], p["belady"], p["ideal"]
        out.append(
            Comparison(
                setting,
                lru.sim_seconds / idp.sim_seconds,
                idp.hit_rate / bel.hit_rate if bel.hit_rate else math.nan,
                ideal.sim_seconds / idp.sim_seconds,
            )
        )
    return out
