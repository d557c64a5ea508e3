"""`metropolis bench sim`: the AI Metropolis comparison, every policy on the same workload, in virtual time.

For each setting (a window of the Smallville day, a number of agents, a number of GPUs) one workload is
generated, then replayed under serial, lockstep, metropolis without and with priority, and the oracle, each on a
fresh serving model. Two bounds frame them: the critical path of the oracle's DAG with every call served alone
on an idle replica (infinite GPUs), and every call submitted at once (the GPUs' throughput, no dependencies).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from metropolis.agents.replay import oracle_scheduler, replay_simulation
from metropolis.engine.simulation import SchedulerFactory
from metropolis.llm.serving import Cluster, Job, ServingConfig, VirtualLLM, preset, single_request_latency
from metropolis.registry import check_name, unknown
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.scheduling import DependencyGraph
from metropolis.scheduling.speculative import Window
from metropolis.workloads import DayConfig, Workload, generate
from metropolis.world.smallville import Town
from metropolis.world.world import World

SCHEDULING_POLICIES = (
    "serial",
    "lockstep",
    "metropolis-nopriority",
    "metropolis-serial-members",
    "metropolis",
    "metropolis-plans",
    "metropolis-routes",
    "speculative",
    "oracle",
)
# With `--metric walking` the workload's agents observe by walking distance; this row runs the metropolis rules
# by straight-line distance on that same workload (safe: a straight line is never longer), so the table separates
# the effect of the walking rules from the effect of the walking metric on the workload.
EUCLIDEAN_RULES = "metropolis-euclidean-rules"
# A policy's name -> (scheduler, priority, how a cluster's members run, whether agents promise to stand still,
# whether they publish their routes). Every policy that forms clusters runs its members together
# (engine/members.py) except the ablation that shows what that is worth. `metropolis-plans`: each replay agent
# promises its recorded still stretches (`ctx.stay`), so neighbours ahead need not wait for it: perfect foresight,
# the most such plans can give. Routes are no foresight: each agent publishes the path it has planned and the step
# through which it keeps to it, as it knew them (scheduling/speculative_routes.py). `metropolis-routes` is the
# metropolis rules with those promises and no bet (the speculative policy with a window of depth 0).
POLICY_SETUP = {
    "serial": ("serial", True, "concurrent", False, False),
    "lockstep": ("lockstep", True, "concurrent", False, False),
    "metropolis-nopriority": ("metropolis", False, "concurrent", False, False),
    "metropolis-serial-members": ("metropolis", True, "serial", False, False),
    "metropolis": ("metropolis", True, "concurrent", False, False),
    "metropolis-plans": ("metropolis", True, "concurrent", True, False),
    "metropolis-routes": ("speculative", True, "concurrent", False, True),
    "speculative": ("speculative", True, "concurrent", False, True),
    "oracle": ("oracle", True, "concurrent", False, False),
    EUCLIDEAN_RULES: ("metropolis", True, "concurrent", False, False),
}
NO_BETS = Window(depth=0)  # `metropolis-routes`: routes as promises, nothing run ahead of a blocker
# The headline's candidates: the policies a user can run without foresight (not `metropolis-plans`, the oracle or
# the ablations).
HEADLINE_POLICIES = ("metropolis", "metropolis-routes", "speculative")
LIVE_POLICIES = (*SCHEDULING_POLICIES, EUCLIDEAN_RULES)  # rows that ran (bounds are computed)
BOUNDS = ("critical-path", "gpu-limit")
PRESET = "l4-llama3-8b"  # the paper's set-up: Llama-3-8B on L4 GPUs


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # day-25, busy, quiet
    start_hour: float
    hours: float
    agents: int
    gpus: int
    mode: str = "copies"  # how more than 25 agents live: copies of the town, or one large town
    metric: str = "euclidean"  # the distance R and the scheduling rules use: euclidean (the paper's) or walking

    @property
    def label(self) -> str:
        town = "" if self.agents <= 25 or self.mode == "copies" else " (large town)"
        metric = "" if self.metric == "euclidean" else f", {self.metric}"
        return f"{self.name} {self.agents} agents{town} {gpus_words(self.gpus)}{metric}"


def gpus_words(gpus: int) -> str:
    """'1 GPU', '8 GPUs'."""
    return f"{gpus} GPU{'s' if gpus != 1 else ''}"


def default_settings(
    which: tuple[str, ...] = ("day-25", "busy", "quiet"),
    agents: tuple[int, ...] = (25, 100, 500, 1000),
    gpus: tuple[int, ...] | None = None,
    hours: float | None = None,
    mode: str = "copies",
    metric: str = "euclidean",
) -> list[Setting]:
    """The paper's table: 25 agents a full day on 1 and 8 GPUs; the busy and the quiet hour at each agent count
    on 8 GPUs. `hours` shortens every window (fast runs)."""
    out = []
    for name in which:
        if name == "day-25":
            for g in gpus or (1, 8):
                out.append(Setting(name, 0.0, hours or 24.0, 25, g, mode, metric))
        elif name in ("busy", "quiet"):
            for n in agents:
                for g in gpus or (8,):
                    start = 12.0 if name == "busy" else 6.0
                    out.append(Setting(name, start, hours or 1.0, n, g, mode, metric))
        else:
            raise unknown("setting", name, ("day-25", "busy", "quiet"))
    return out


@dataclass(slots=True)
class PolicyResult:
    setting: Setting
    policy: str
    sim_seconds: float
    mean_in_flight: float = 0.0
    peak_in_flight: int = 0
    calls: int = 0
    wall_seconds: float = 0.0
    tokens: int = 0  # prompt + output tokens of the calls the run kept
    wasted_tokens: int = 0  # tokens of answers a restarted member or an undone speculative unit never used
    restarts: int = 0
    rollbacks: int = 0  # speculative units undone by a conflict
    in_flight_curve: np.ndarray | None = field(default=None, repr=False)  # (bins,) mean in flight per bin


@dataclass(slots=True)
class SettingResult:
    setting: Setting
    workload_calls: int
    generate_seconds: float
    results: dict[str, PolicyResult]

    def ratio(self, policy: str, base: str) -> float:
        return self.results[base].sim_seconds / self.results[policy].sim_seconds

    def share_of_oracle(self, policy: str) -> float:
        return self.results["oracle"].sim_seconds / self.results[policy].sim_seconds


Progress = Callable[[str, int, int], None]  # message, done, total agent-steps of the current run

# `--cost` terms -> the cost model's coefficient: per iteration, per prefill token, per sequence decoded, per KV
# token attended. Scaling all alike changes no ratio; scaling one moves the balance of the serving costs.
COST_TERMS = {"iteration": "c0", "prefill": "c_prefill", "decode": "c_decode", "kv": "c_kv"}


def scaled_serving(serving: ServingConfig, scale: Mapping[str, float]) -> ServingConfig:
    """`serving` with some cost coefficients multiplied (`{"prefill": 2.0}`: prefill twice as slow)."""
    changes = {}
    for term, factor in scale.items():
        check_name(term, COST_TERMS, "cost term")
        if not factor > 0:
            raise ValueError(f"a cost factor must be > 0, got {term}={factor}")
        coefficient = COST_TERMS[term]
        changes[coefficient] = getattr(serving.cost, coefficient) * factor
    return serving.replace(cost=dataclasses.replace(serving.cost, **changes))


def run_setting(
    town: Town,
    setting: Setting,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    cost_scale: Mapping[str, float] | None = None,
    window: Window | None = None,
) -> SettingResult:
    t0 = time.perf_counter()
    config = DayConfig(
        agents=setting.agents,
        start_hour=setting.start_hour,
        hours=setting.hours,
        mode=setting.mode,
        metric=setting.metric,
        seed=seed,
    )
    workload, layout = generate(town, config)
    if workload.calls == 0:  # every policy would take no time: no ratio to print
        raise ValueError(
            f"{setting.label}: the {setting.hours:g} h from {int(setting.start_hour):02d}:"
            f"{round(setting.start_hour % 1 * 60):02d} make no LLM calls (the town is asleep); choose a longer "
            "window (--hours)"
        )
    world = layout.world(config.perception_radius, metric=setting.metric)
    generated = time.perf_counter() - t0
    serving = scaled_serving(preset(PRESET, gpus=setting.gpus), cost_scale or {})
    results = {}
    for policy in SCHEDULING_POLICIES:
        results[policy] = run_policy(workload, world, policy, serving, setting, progress, window)
    if setting.metric != "euclidean":
        straight = layout.world(config.perception_radius, metric="euclidean")
        results[EUCLIDEAN_RULES] = run_policy(workload, straight, EUCLIDEAN_RULES, serving, setting, progress)
    graph = DependencyGraph.from_steps(workload.step_deps(), workload.agents, workload.steps)
    results["critical-path"] = PolicyResult(setting, "critical-path", critical_path(workload, graph, serving))
    results["gpu-limit"] = PolicyResult(setting, "gpu-limit", gpu_limit(workload, serving))
    return SettingResult(setting, workload.calls, generated, results)


def run_policy(
    workload: Workload,
    world: World,
    policy: str,
    serving: ServingConfig,
    setting: Setting,
    progress: Progress | None = None,
    window: Window | None = None,
) -> PolicyResult:
    """Replay `workload` under `policy` on a fresh serving model; `metropolis-nopriority` turns priority off in
    both the scheduler and the serving queue; `window` bounds the speculative policy (None: its default)."""
    name, priority, members, still, routes = POLICY_SETUP[policy]
    sched: str | SchedulerFactory = oracle_scheduler(workload) if name == "oracle" else name
    if policy == "metropolis-routes":
        window = NO_BETS
    sim = replay_simulation(
        workload, world, sched, priority=priority, members=members, promise_still=still, window=window, routes=routes
    )
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, serving.replace(queue="priority" if priority else "fcfs")))
    total = workload.agents * workload.steps
    done = 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None and (done == total or done % 2000 < k):
            progress(f"{setting.label}: {policy}", done, total)

    report = VirtualRuntime(sim, env, llm).run(advance)
    spec = sim.speculation.stats if sim.speculation is not None else None
    return PolicyResult(
        setting,
        policy,
        report.duration,
        mean_in_flight=report.mean_llm_in_flight,
        peak_in_flight=report.peak_llm_in_flight,
        calls=report.llm_calls,
        wall_seconds=report.wall_seconds,
        in_flight_curve=in_flight_curve(llm, report.duration),
        tokens=report.prompt_tokens + report.completion_tokens,
        wasted_tokens=sim.member_stats.wasted_prompt_tokens
        + sim.member_stats.wasted_output_tokens
        + (spec.wasted_tokens if spec else 0),
        restarts=sim.member_stats.restarts,
        rollbacks=spec.rollbacks if spec else 0,
    )


def in_flight_curve(llm: VirtualLLM, duration: float, bins: int = 96) -> np.ndarray:
    """Mean requests in flight in each of `bins` equal slices of the run."""
    if not llm.responses or duration <= 0:
        return np.zeros(bins)
    start = np.array([r.start for r in llm.responses])
    end = np.array([r.end for r in llm.responses])
    length = end - start
    edges = np.linspace(0.0, duration, bins + 1)
    # area(t): request-seconds in flight before t
    area = np.array([np.minimum(np.clip(t - start, 0, None), length).sum() for t in edges])
    return np.diff(area) / np.diff(edges)


def critical_path(workload: Workload, graph: DependencyGraph, serving: ServingConfig) -> float:
    """The longest chain of the oracle's DAG, each unit costing its calls served one after another on an idle
    replica: the time with infinitely many GPUs."""
    n = workload.agents
    latency = _latencies(workload, serving)
    cost = np.zeros(workload.steps * n)
    np.add.at(cost, workload.call_step.astype(np.int64) * n + workload.call_owner, latency)
    cost_list = cost.tolist()
    finish = [0.0] * len(graph.units)
    for u, unit in enumerate(graph.units):  # units are in step order: dependencies come first
        own = sum(cost_list[unit.step * n + a] for a in unit.members)
        deps = graph.waits_for[u]
        finish[u] = own + (max(finish[d] for d in deps) if deps else 0.0)
    return max(finish, default=0.0)


def _latencies(workload: Workload, serving: ServingConfig) -> np.ndarray:
    pairs = np.stack([workload.call_prompt, workload.call_output], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    values = np.array([single_request_latency(serving, int(p), int(o)) for p, o in unique])
    return values[inverse.reshape(-1)]


def gpu_limit(workload: Workload, serving: ServingConfig) -> float:
    """Every call submitted at time 0, lowest step first: how long the GPUs need for the work alone."""
    env = Environment()
    cluster = Cluster(env, serving)
    for step, owner, prompt, output in zip(
        workload.call_step.tolist(),
        workload.call_owner.tolist(),
        workload.call_prompt.tolist(),
        workload.call_output.tolist(),
        strict=True,
    ):
        cluster.submit(Job(workload.names[owner], prompt, output, step))
    env.run()
    return env.now


def rows(result: SettingResult) -> list[dict[str, object]]:
    """One flat record per policy and bound, for the CSV."""
    out = []
    for policy, r in result.results.items():
        s = result.setting
        live = policy in LIVE_POLICIES
        out.append(
            {
                "setting": s.name,
                "agents": s.agents,
                "gpus": s.gpus,
                "mode": s.mode,
                "hours": s.hours,
                "policy": policy,
                "calls": result.workload_calls,
                "sim_seconds": round(r.sim_seconds, 3),
                "speedup_over_serial": round(result.ratio(policy, "serial"), 4),
                "speedup_over_lockstep": round(result.ratio(policy, "lockstep"), 4),
                "share_of_oracle": round(result.share_of_oracle(policy), 4),
                "mean_in_flight": round(r.mean_in_flight, 3) if live else None,
                "peak_in_flight": r.peak_in_flight if live else None,
                "wall_seconds": round(r.wall_seconds, 2) if live else None,
                "restarts": r.restarts if live else None,
                "rollbacks": r.rollbacks if live else None,
                "wasted_tokens": r.wasted_tokens if live else None,
                "wasted_share": round(r.wasted_tokens / (r.tokens + r.wasted_tokens), 4) if live and r.tokens else None,
            }
        )
    return out
