"""`metropolis bench memory`: eviction and prefetch policies for agents' private serving state, side by side.

The setting is ScaleSim's: every agent has private serving state (the KV cache of its ~600-token prompt
prefix, optionally its own LoRA adapter, or a whole small model of its own: `state`) and the GPU holds only
`fraction` of all agents' state. For every setting (workload class, agents, GPUs, scheduler, state kind,
fraction, LoRA rank) the same workload (Smallville: copies of the town, replayed by the replay agent; the
`independent` and `diffusion` classes: a generated call schedule, see `bench/memory_classes.py`) runs in
virtual time once per system:

- `sglang`: the baseline engine: LRU eviction, load on demand, and no host tier for KV (SGLang's radix cache
  without its hierarchical cache drops evicted prefixes: the next call recomputes the prefix); adapters live in
  host memory and are copied to the GPU on demand; an evicted per-agent model is reloaded from disk;
- `id-nohost`: the same engine with invocation-distance eviction (and adapter prefetch): what the eviction
  order alone buys when a miss means recomputing the prefix;
- `lru`: the same with a host tier for KV (evicted prefixes are copied to host memory and back on demand);
- `invocation-distance`: ScaleSim: host tier, evict the agent whose next call is furthest, prefetch the nearest
  after every engine segment and scheduler commit, from `track_invocation_distance` (runtime/serving_memory.py);
- `belady`: MIN from the recorded future: the invocation-distance run's accesses, replayed agent by agent
  (`ReplayBeladyPolicy`), with the same prefetch. Closed loop, so NOT an upper bound: each run reorders
  admissions (see `bench/memory_openloop.py` for the well-defined comparison);
- `ideal`: a GPU tier that holds everything (every call after an agent's first hits): the floor on time.

Per-agent models: host memory holds `model_host_fraction` of all agents' models, the rest are read from disk
(the third tier) when needed. What a miss costs is the serving model's business and the same for every row: a
demand load either stalls the replica
(`demand_loads="blocking"`, SGLang's default for adapters) or waits off the queue (`"overlap"`); an adapter load
costs `lora_load_s` on top of its bytes; a recomputed prefix is prefilled with the request.

With `gpus` > 1 the cluster has that many data-parallel replicas, routed by agent affinity, each with its own
GPU and host tier and its own memory manager; the GPU tiers together hold `fraction` of all agents' state
(see `gpu_bytes`), so the table compares the same total memory spread over more, smaller tiers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from metropolis.agents.replay import replay_simulation
from metropolis.bench.memory_classes import (
    SPATIAL_CLASSES,
    STATES,
    WORKLOAD_CLASSES,
    EstimateLog,
    SimulationFactory,
    owns_model,
    schedule_factory,
    serving_config,
    state_shape,
)
from metropolis.engine.simulation import Simulation
from metropolis.llm.serving import Cluster, VirtualLLM
from metropolis.llm.serving.agentmem import ADMISSIONS, DEMAND_LOADS, AgentMemory
from metropolis.memory.policies import EvictionPolicy
from metropolis.memory.replay import ReplayBeladyPolicy
from metropolis.memory.state import AGENT_MODELS, StateSpec, agent_state
from metropolis.memory.tiers import TierConfig
from metropolis.registry import check_name
from metropolis.runtime import Environment, RunReport, VirtualRuntime
from metropolis.runtime.serving_memory import PrefetchOnCommit, gpu_tier_bytes, track_invocation_distance
from metropolis.workloads import DayConfig, Workload, generate
from metropolis.world.smallville import load_smallville
from metropolis.world.world import World

EVICTION_POLICIES = ("sglang", "id-nohost", "lru", "invocation-distance", "belady", "ideal")
NO_HOST = ("sglang", "id-nohost")  # no host tier for KV: an evicted prefix is recomputed
BY_DISTANCE = ("id-nohost", "invocation-distance")
WORKLOADS = WORKLOAD_CLASSES


class Setting(NamedTuple):
    """One configuration every policy runs on; `fraction`: the share of all agents' state the GPU tiers hold."""

    agents: int
    gpus: int
    scheduler: str
    fraction: float
    lora_rank: int | None
    state: str = "kv"
    workload: str = "smallville"


@dataclass(frozen=True, slots=True)
class MemoryBenchConfig:
    agents: tuple[int, ...] = (25, 100)
    gpus: tuple[int, ...] = (1,)  # data-parallel replicas (one GPU each); a tuple, like `agents`, to sweep
    start_hour: float = 12.0  # the busy window of the Smallville day
    hours: float = 0.25
    fractions: tuple[float, ...] = (0.10, 0.25)
    lora_ranks: tuple[int | None, ...] = (None, 16)
    schedulers: tuple[str, ...] = ("lockstep", "metropolis")
    preset: str = "l4-llama3-8b"
    prefix_tokens: int = 600  # the cached part of a ~640-token prompt: persona and retrieved memories
    h2d_bandwidth: float = 25e9  # PCIe 4.0 x16 in practice
    disk_bandwidth: float = 2e9
    lora_load_s: float = 0.025  # fixed cost of one adapter load (see docs/serving-memory.md for sources)
    demand_loads: str = "blocking"
    admission: str = "fcfs"
    prefetch: int = 4
    workloads: tuple[str, ...] = ("smallville",)
    states: tuple[str, ...] = ("kv",)
    agent_model: str = "qwen2.5-0.5b"  # the small model every agent owns in the model states
    model_host_fraction: float = 0.5  # host memory holds this share of all agents' models; the rest is on disk
    seed: int = 0
    spatial: bool = True  # cap plans by the spatial bound: the agents' plans miss every unplanned call
    policies: tuple[str, ...] = EVICTION_POLICIES  # a subset runs faster; runs in this order whatever the order given

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError(f"no eviction policy given; choose one or more of: {', '.join(EVICTION_POLICIES)}")
        for policy in self.policies:
            check_name(policy, EVICTION_POLICIES, "eviction policy")
        if "belady" in self.policies and "invocation-distance" not in self.policies:
            raise ValueError("policy 'belady' replays the invocation-distance run's accesses: add invocation-distance")
        if not self.agents or min(self.agents) < 1:
            raise ValueError(f"agent counts must be >= 1, got {self.agents}")
        if not self.gpus or min(self.gpus) < 1:
            raise ValueError(f"GPU counts must be >= 1, got {self.gpus}")
        if not (self.hours > 0 and self.start_hour >= 0 and self.start_hour + self.hours <= 24):
            raise ValueError(f"the window {self.start_hour}h + {self.hours}h must lie within one day")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ValueError(f"GPU fractions must be within (0, 1], got {f}")
        for name, value, valid in (
            ("demand_loads", self.demand_loads, DEMAND_LOADS),
            ("admission", self.admission, ADMISSIONS),
            ("agent model", self.agent_model, tuple(AGENT_MODELS)),
        ):
            check_name(value, valid, name)
        for names, valid, what in ((self.workloads, WORKLOADS, "workload class"), (self.states, STATES, "state kind")):
            if not names:
                raise ValueError(f"no {what} given; choose one or more of: {', '.join(valid)}")
            for name in names:
                check_name(name, valid, what)
        if not 0 < self.model_host_fraction <= 1:
            raise ValueError(f"model_host_fraction must be within (0, 1], got {self.model_host_fraction}")
        if not self.lora_load_s >= 0:
            raise ValueError(f"lora_load_s must be >= 0 seconds, got {self.lora_load_s}")

    def settings(self) -> Iterator[Setting]:
        """Every combination; per-agent models carry no adapter (the LoRA ranks apply to the `kv` state)."""
        for workload in self.workloads:
            for agents in self.agents:
                for gpus in self.gpus:
                    for scheduler in self.schedulers:
                        for state in self.states:
                            for rank in (None,) if owns_model(state) else self.lora_ranks:
                                for fraction in self.fractions:
                                    yield Setting(agents, gpus, scheduler, fraction, rank, state, workload)

    def describe(self) -> str:
        """The modelled replica, for the table header."""
        return (
            f"{'/'.join(self.workloads)} {self.start_hour:g}h+{self.hours * 60:g}min, {self.preset} per GPU, prefix "
            f"{self.prefix_tokens} tok, PCIe {self.h2d_bandwidth / 1e9:g} GB/s, adapter load +"
            f"{self.lora_load_s * 1e3:g} ms, demand loads {self.demand_loads}, admission {self.admission}; "
            "sglang = LRU and id-nohost = ID without a host tier for KV (an evicted prefix is recomputed) or "
            f"models (reloaded from disk); agent model {self.agent_model}, host holds "
            f"{self.model_host_fraction:.0%} of the models"
        )


@dataclass(frozen=True, slots=True)
class MemoryBenchRow:
    agents: int
    gpus: int
    scheduler: str
    fraction: float
    lora_rank: int | None
    state: str
    workload: str
    policy: str
    sim_seconds: float
    llm_calls: int
    hit_rate: float
    prefetch_hit_rate: float
    bytes_on_demand: int
    bytes_prefetched: int
    bytes_offloaded: int
    recompute_tokens: int
    late_loads: int  # hits whose prefetched state was still arriving: the request waited
    late_wait_s: float
    estimate_error: float  # mean |predicted - actual| steps to the agent's next call (nan: no prediction)
    estimate_within_1: float  # share of predictions within one step

    @property
    def bytes_moved(self) -> int:
        return self.bytes_on_demand + self.bytes_prefetched + self.bytes_offloaded

    @property
    def setting(self) -> Setting:
        return Setting(self.agents, self.gpus, self.scheduler, self.fraction, self.lora_rank, self.state, self.workload)


@dataclass(frozen=True, slots=True)
class RunAccesses:
    """What one run's replicas admitted, in order: agents and their steps (one list per replica)."""

    agents: list[list[int]]
    steps: list[list[int]]


def state_specs(cfg: MemoryBenchConfig, rank: int | None, state: str = "kv", agent: int = 0) -> list[StateSpec]:
    """One agent's private state in this state kind: `kv` the served model's prefix (+ adapter), `model` the
    agent's own small model, `model+kv` that model and its own prefix."""
    prefix = 0 if state == "model" else cfg.prefix_tokens
    return agent_state(agent, prefix, state_shape(state, cfg.agent_model), rank, owns_model(state))


def total_state_bytes(cfg: MemoryBenchConfig, agents: int, rank: int | None, state: str = "kv") -> int:
    return agents * sum(s.nbytes for s in state_specs(cfg, rank, state))


def gpu_bytes(
    cfg: MemoryBenchConfig, agents: int, fraction: float, rank: int | None, gpus: int = 1, state: str = "kv"
) -> int:
    """One replica's GPU tier, as `metropolis run --memory` sizes it."""
    return gpu_tier_bytes(total_state_bytes(cfg, agents, rank, state), agents, fraction, gpus)


def replica_tiers(cfg: MemoryBenchConfig, setting: Setting, policy: str) -> TierConfig:
    """Every replica's tiers. `ideal` and the host tier may hold every agent: with agent affinity a replica
    only ever registers its own agents, so that is exactly its share however unevenly the hash splits them
    (an even split's host tier would drop the state of a busier replica's extra agents)."""
    agents, gpus, _, fraction, rank, state, _ = setting
    total = total_state_bytes(cfg, agents, rank, state)
    return TierConfig(
        gpu_bytes=total if policy == "ideal" else gpu_bytes(cfg, agents, fraction, rank, gpus, state),
        host_bytes=math.floor(total * cfg.model_host_fraction) if owns_model(state) else total,
        h2d_bandwidth=cfg.h2d_bandwidth,
        d2h_bandwidth=cfg.h2d_bandwidth,
        disk_bandwidth=cfg.disk_bandwidth,
        kv_to_host=policy not in NO_HOST,
        lora_load_s=cfg.lora_load_s,
        model_to_host=policy not in NO_HOST,
    )


def memory_setup(
    cfg: MemoryBenchConfig,
    setting: Setting,
    policy: str,
    rule: str | Callable[[int], EvictionPolicy],
    sim: Simulation,
) -> AgentMemory:
    tiers = replica_tiers(cfg, setting, policy)
    spatial = cfg.spatial and setting.workload in SPATIAL_CLASSES
    distance = track_invocation_distance(sim, spatial=spatial).distance
    prefetch = cfg.prefetch if policy in (*BY_DISTANCE, "belady") else 0
    return AgentMemory(
        tiers,
        0 if setting.state == "model" else cfg.prefix_tokens,
        rule,
        distance,
        setting.lora_rank,
        state_shape(setting.state, cfg.agent_model),
        prefetch,
        cfg.demand_loads,
        cfg.admission,
        own_model=owns_model(setting.state),
    )


def run_cluster(
    cfg: MemoryBenchConfig,
    make_sim: SimulationFactory,
    setting: Setting,
    policy: str,
    recorded: list[list[int]] | None = None,
    log: EstimateLog | None = None,
) -> tuple[RunReport, Cluster]:
    """One run in virtual time; the cluster keeps each replica's memory manager for inspection. With `log`, the
    run also notes the estimator's predictions against the agents' actual next calls."""
    sim = make_sim(setting.agents, setting.scheduler)
    env = Environment()
    rule: str | Callable[[int], EvictionPolicy] = "invocation-distance" if policy in BY_DISTANCE else "lru"
    if policy == "belady":
        if recorded is None:
            raise RuntimeError("the belady run needs the accesses recorded by an earlier run")
        rule = lambda replica: ReplayBeladyPolicy(recorded[replica])  # noqa: E731
    memory = memory_setup(cfg, setting, policy, rule, sim)
    cluster = Cluster(env, serving_config(cfg.preset, setting.state, cfg.agent_model, setting.gpus), memory=memory)
    sim.listeners.append(PrefetchOnCommit(cluster.prefetch))
    if log is not None:
        assert memory.distance is not None
        log.distance = memory.distance
        sim.listeners.append(log)
    return VirtualRuntime(sim, env, VirtualLLM(env, cluster)).run(), cluster


def run_policy(
    cfg: MemoryBenchConfig,
    make_sim: SimulationFactory,
    setting: Setting,
    policy: str,
    recorded: list[list[int]] | None = None,
) -> tuple[MemoryBenchRow, RunAccesses]:
    """One run; returns its row and what each replica admitted in order (the future Belady replays)."""
    log = EstimateLog(lambda agent: math.inf) if policy in BY_DISTANCE else None
    report, cluster = run_cluster(cfg, make_sim, setting, policy, recorded, log)
    stats = cluster.memory_stats()
    assert stats is not None
    error, within = log.summary() if log is not None else (math.nan, math.nan)
    row = MemoryBenchRow(
        *setting,
        policy,
        report.duration,
        report.llm_calls,
        stats.hit_rate,
        stats.prefetch_hits / stats.admissions if stats.admissions else 0.0,
        stats.bytes_in,
        stats.bytes_prefetched,
        stats.bytes_out,
        stats.recompute_tokens,
        stats.late,
        stats.late_wait_s,
        error,
        within,
    )
    return row, RunAccesses([m.accesses for m in cluster.memories], [m.steps for m in cluster.memories])


def default_factory(cfg: MemoryBenchConfig, workload: str | None = None) -> SimulationFactory:
    """The workload class (default: the first configured), generated once per agent count and replayed by a
    fresh simulation each run."""
    workload = workload or cfg.workloads[0]
    steps = round(cfg.hours * 360)
    if workload == "bursty":
        from metropolis.bench.memory_workload import bursty_simulation

        return lambda agents, scheduler: bursty_simulation(agents, steps, scheduler, cfg.seed)
    if workload != "smallville":
        return schedule_factory(workload, steps, cfg.seed)
    town = load_smallville()
    cache: dict[int, tuple[Workload, World]] = {}

    def make(agents: int, scheduler: str) -> Simulation:
        if agents not in cache:
            day = DayConfig(agents=agents, start_hour=cfg.start_hour, hours=cfg.hours, seed=cfg.seed)
            workload, layout = generate(town, day)
            cache[agents] = (workload, layout.world(day.perception_radius))
        workload, world = cache[agents]
        return replay_simulation(workload, world, scheduler)

    return make


def run_memory_bench(
    cfg: MemoryBenchConfig,
    make_sim: SimulationFactory | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[MemoryBenchRow], dict[Setting, RunAccesses]]:
    """Every setting under every policy; returns the rows and each setting's `lru` run accesses (the
    sequence the open-loop comparison replays)."""
    factories = {w: make_sim or default_factory(cfg, w) for w in cfg.workloads}
    rows, sequences = [], {}
    for setting in cfg.settings():
        recorded = None
        for policy in (p for p in EVICTION_POLICIES if p in cfg.policies):
            if progress is not None:
                agents, gpus, scheduler, fraction, rank, state, workload = setting
                progress(
                    f"{workload}, {agents} agents, {gpus} GPU, {scheduler}, {state}, {fraction:.0%} on GPU, "
                    f"LoRA {rank}: {policy}"
                )
            row, accesses = run_policy(cfg, factories[setting.workload], setting, policy, recorded)
            if policy == "invocation-distance":
                recorded = accesses.agents
            if policy == "lru":
                sequences[setting] = accesses
            rows.append(row)
    return rows, sequences


@dataclass(frozen=True, slots=True)
class Comparison:
    """One setting's verdict (nan where a policy it needs was not run): ID's speedup over the SGLang baseline
    and over LRU with a host tier, its hit rate as a share of the (closed-loop) Belady run's, and the ideal
    time as a share of ID's. `nohost_speedup_over_sglang` is what ID eviction alone buys on the SGLang engine;
    `bound_over_sglang` (sglang / ideal) and `bound_over_lru` (lru / ideal) are the most ANY policy could gain
    over those baselines in this setting, since no eviction order beats a GPU that holds everything."""

    setting: Setting
    speedup_over_sglang: float
    nohost_speedup_over_sglang: float
    speedup_over_lru: float
    hit_share_of_belady: float
    time_share_of_ideal: float
    bound_over_sglang: float
    bound_over_lru: float


def compare(rows: list[MemoryBenchRow]) -> list[Comparison]:
    by: dict[Setting, dict[str, MemoryBenchRow]] = {}
    for r in rows:
        by.setdefault(r.setting, {})[r.policy] = r
    return [
        Comparison(
            setting,
            _ratio(p, "sglang", "invocation-distance"),
            _ratio(p, "sglang", "id-nohost"),
            _ratio(p, "lru", "invocation-distance"),
            _ratio(p, "invocation-distance", "belady", "hit_rate"),
            _ratio(p, "ideal", "invocation-distance"),
            _ratio(p, "sglang", "ideal"),
            _ratio(p, "lru", "ideal"),
        )
        for setting, p in by.items()
    ]


def _ratio(runs: dict[str, MemoryBenchRow], top: str, bottom: str, field: str = "sim_seconds") -> float:
    """runs[top].field / runs[bottom].field; nan when either policy was not run (or the bottom is 0)."""
    if top not in runs or bottom not in runs or not getattr(runs[bottom], field):
        return math.nan
    return float(getattr(runs[top], field) / getattr(runs[bottom], field))
