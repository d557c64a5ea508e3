"""The well-defined Belady comparison: policies replayed on one recorded access sequence (open loop).

In the closed loop each policy's misses reorder what the replica admits next, so a replay of one run's future
in another run is not an upper bound (it came out above 100% before). Here every policy sees the same
sequence: the `(step, agent)` accesses the `lru` run of a setting admitted, replayed by `memory.tracesim` with
the same GPU tier (each replica's own) and state sizes, demand paging only (no prefetch: Belady's MIN is the
optimum for demand paging, and a prefetching policy could beat it). Invocation distance uses the exact steps to
each agent's next access: what a perfect estimator would say, so it is ID's best case, not the live estimator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from metropolis.bench.memory import MemoryBenchConfig, RunAccesses, Setting, gpu_bytes, state_specs
from metropolis.memory.tracesim import exact_distances, simulate_hits

OPEN_LOOP_EVICTION_POLICIES = ("lru", "invocation-distance", "belady")


@dataclass(frozen=True, slots=True)
class OpenLoopRow:
    setting: Setting  # the run whose sequence was replayed
    accesses: int
    hit_rates: dict[str, float]

    @property
    def id_share_of_belady(self) -> float:
        best = self.hit_rates["belady"]
        return self.hit_rates["invocation-distance"] / best if best else float("nan")


def open_loop(cfg: MemoryBenchConfig, sequences: dict[Setting, RunAccesses]) -> list[OpenLoopRow]:
    """Hit rates of LRU, exact invocation distance and Belady on each recorded `lockstep` sequence (or the
    first scheduler's when lockstep was not run). With several replicas each replays its own sequence against
    its own GPU tier and the hits are summed: affinity routing gives every agent to one replica."""
    scheduler = "lockstep" if "lockstep" in cfg.schedulers else cfg.schedulers[0]
    out = []
    for setting, run in sequences.items():
        if setting.scheduler != scheduler:
            continue
        size = sum(s.nbytes for s in state_specs(cfg, setting.lora_rank, setting.state))
        capacity = gpu_bytes(cfg, setting.agents, setting.fraction, setting.lora_rank, setting.gpus, setting.state)
        hits = dict.fromkeys(OPEN_LOOP_EVICTION_POLICIES, 0)
        total = 0
        for steps, who in zip(run.steps, run.agents, strict=True):
            if not who:  # a replica no agent was routed to
                continue
            accesses = list(zip(steps, who, strict=True))
            sizes = dict.fromkeys(who, size)
            distances = exact_distances(accesses, unit="step")
            for p in OPEN_LOOP_EVICTION_POLICIES:
                hits[p] += simulate_hits(accesses, p, capacity, sizes, distances).hits
            total += len(accesses)
        out.append(OpenLoopRow(setting, total, {p: h / total if total else 0.0 for p, h in hits.items()}))
    return out
