"""Agent memory in the serving model: each replica keeps agents' private state (KV prefix, LoRA) on its GPU tier.

Optional: a cluster without `AgentMemory` behaves exactly as before (every prompt prefilled whole). With it, a
request's prompt is the agent's cached prefix (persona, memories) plus a fresh suffix, and a replica admits a
request only once the agent's state is on its GPU tier (`MemoryManager.admit`, pinned until the request
finishes):

- hit: only the suffix is prefilled;
- state on the host (or an adapter on disk): the request waits off the queue for the transfer while the
  replica computes the others, then prefills the suffix;
- KV prefix gone (or recompute cheaper than the transfer): the prefix tokens are added to its prefill.

After each segment of the replica (and whenever the runtime calls `Cluster.prefetch`, e.g. on each scheduler
commit) the manager moves the state of the agents needed soonest onto the GPU over the host link, overlapping
compute. Agents are registered on a replica at their first request there, so with agent-affinity routing (the
default when memory is on) each replica only ever holds and prefetches its own agents.

Two engine behaviours are switchable, because real engines differ and they decide what a miss costs:

- `demand_loads`: "overlap" (the request waits off the queue while the others compute, as above) or
  "blocking" (the replica stalls until the state is on the GPU: SGLang's LoRA manager copies a new batch's
  adapters into its GPU pool before the forward pass, unless `--enable-lora-overlap-loading` is set).
  Prefetches always overlap compute: that is what a prefetch is.
- `admission`: "fcfs" (strict queue order: a head whose state cannot be brought in blocks everyone behind it)
  or "lpm" (the cluster gives every replica the cache-aware waiting queue, SGLang's `--schedule-policy lpm`:
  among the first `window` waiting requests, lowest step first, those whose agent's state is on the GPU go
  first, and a request whose state cannot be brought in is skipped instead of blocking; see queues.py).

Both are read once, where the cluster is built: each replica sees a memory gate (`ReplicaMemory`, with
`overlap_loads`) and a queue object, never these strings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from metropolis.compiled import picklable
from metropolis.llm.serving.gate import MemoryGate
from metropolis.llm.serving.job import Job
from metropolis.memory.manager import MemoryManager, MemoryStats
from metropolis.memory.policies import Distance, EvictionPolicy, make_eviction_policy
from metropolis.memory.state import LLAMA3_8B, ModelShape, StateKind, StateSpec, agent_state
from metropolis.memory.tiers import Place, TierConfig
from metropolis.registry import check_name

PolicyFactory = Callable[[int], EvictionPolicy]  # replica index -> that replica's policy
DEMAND_LOADS = ("overlap", "blocking")
ADMISSIONS = ("fcfs", "lpm")


@dataclass(frozen=True, slots=True)
class AgentMemory:
    """How agent memory is set up on every replica of a cluster.

    `prefix_tokens`: the cached prompt prefix of every agent (one number, or per agent id; 0: none); `lora_rank`:
    give every agent a LoRA adapter on the attention projections of `shape`; `own_model`: every agent runs its
    own copy of `shape` (its weights are agent state, loaded from host or disk). `policy`: a policy name (see
    `metropolis.memory.eviction_policy_names`) or a factory per replica; invocation distance needs `distance`.
    `prefetch`: how many agents one prefetch may start moving (0: never prefetch). `demand_loads`,
    `admission` and `window`: see the module docstring.
    """

    tiers: TierConfig
    prefix_tokens: int | Mapping[int, int]
    policy: str | PolicyFactory = "invocation-distance"
    distance: Distance | None = None
    lora_rank: int | None = None
    shape: ModelShape = LLAMA3_8B
    prefetch: int = 4
    demand_loads: str = "overlap"
    admission: str = "fcfs"
    window: int = 128
    own_model: bool = False

    def __post_init__(self) -> None:
        if self.prefetch < 0:
            raise ValueError(f"agent memory: prefetch must be >= 0 agents, got {self.prefetch}")
        check_name(self.demand_loads, DEMAND_LOADS, "agent memory demand_loads")
        check_name(self.admission, ADMISSIONS, "agent memory admission")
        if self.window < 1:
            raise ValueError(f"agent memory: the admission window must be >= 1 request, got {self.window}")
        if self.policy in ("invocation-distance", "scalesim") and self.distance is None:
            raise ValueError(
                "agent memory: policy 'invocation-distance' needs distance=..., e.g. Simulation's invocation_distance"
            )

    def states(self, agent: int) -> list[StateSpec]:
        prefix = self.prefix_tokens
        tokens = prefix if isinstance(prefix, int) else prefix.get(agent)
        if tokens is None:
            raise ValueError(f"agent memory: no prefix_tokens for agent {agent}")
        return agent_state(agent, tokens, self.shape, self.lora_rank, self.own_model)

    def make_policy(self, replica: int) -> EvictionPolicy:
        if callable(self.policy):
            return self.policy(replica)
        return make_eviction_policy(self.policy, distance=self.distance)


class ReplicaMemory(MemoryGate):
    """One replica's memory gate (see gate.py): can this job start, what does its prefill cost, when is its state
    on the GPU."""

    def __init__(self, setup: AgentMemory, manager: MemoryManager) -> None:
        self.setup = setup
        self.manager = manager
        self.overlap_loads = setup.demand_loads == "overlap"
        self.accesses: list[int] = []  # agents in the order this replica admitted them (for Belady replays)
        self.steps: list[int] = []  # the step (request priority) of each of those accesses
        self._prefix: dict[int, int] = {}

    def _covers(self, job: Job) -> bool:
        """Register the job's agent at its first request here; a request without an agent id needs nothing."""
        agent = job.agent_id
        if agent is None:
            return False
        if agent not in self._prefix:
            specs = self.setup.states(agent)
            tiers = self.manager.tiers
            hosted = [s for s in specs if tiers.config.hosts(s.kind)]
            fits = sum(s.nbytes for s in hosted) <= tiers.host.free
            self.manager.register(hosted, Place.HOST if fits else Place.NONE)
            self.manager.register([s for s in specs if not tiers.config.hosts(s.kind)], Place.NONE)
            self._prefix[agent] = sum(s.tokens or 0 for s in specs if s.kind is StateKind.KV_PREFIX)
        return True

    def resident(self, job: Job) -> bool:
        """Is everything the job needs on the GPU already (a hit, if admitted now)?"""
        return not self._covers(job) or self.manager.resident(job.agent_id)  # type: ignore[arg-type]

    def can_admit(self, job: Job) -> bool:
        return not self._covers(job) or self.manager.can_admit(job.agent_id)  # type: ignore[arg-type]

    def admit(self, job: Job, now: float) -> float:
        """Pin the agent's state and set the job's prefill; returns when the state is on the GPU."""
        if not self._covers(job):
            return now
        agent = job.agent_id
        assert agent is not None
        adm = self.manager.admit(agent, now)
        self.accesses.append(agent)
        self.steps.append(job.priority)
        cached = min(self._prefix[agent], job.prompt_tokens - 1)
        job.prefill_tokens = job.prompt_tokens - cached + min(adm.recompute_tokens, cached)
        return max(now, adm.ready_at)

    def release(self, job: Job, now: float) -> None:
        if job.agent_id is not None and job.agent_id in self._prefix:
            self.manager.release(job.agent_id, now)

    def prefetch(self, now: float) -> None:
        if self.setup.prefetch:
            self.manager.prefetch(now, limit=self.setup.prefetch)

    @property
    def stats(self) -> MemoryStats:
        return self.manager.stats


def replica_memories(setup: AgentMemory, replicas: int, recompute: Callable[[int], float]) -> list[ReplicaMemory]:
    """One manager per replica, each with its own tiers and policy; `recompute` prices prefix tokens."""
    return [ReplicaMemory(setup, MemoryManager(setup.tiers, setup.make_policy(i), recompute)) for i in range(replicas)]


def combined_stats(memories: Sequence[ReplicaMemory]) -> MemoryStats:
    """The replicas' statistics summed field by field."""
    out = MemoryStats()
    for m in memories:
        for f in dataclasses.fields(MemoryStats):
            setattr(out, f.name, getattr(out, f.name) + getattr(m.stats, f.name))
    return out


picklable(AgentMemory)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
