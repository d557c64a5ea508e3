"""`metropolis bench realtime`: every policy run for real against the local batching server, wall-clock speedups
side by side, and next to each the virtual-time prediction of the same run with the serving model fitted to that
server (`metropolis calibrate --llm local`).

Two workloads, each replayed under every scheduling policy on the same server:
- walkers: the built-in random walkers with LLM calls at the Generative Agents rate, as `metropolis run --agent
  walker --llm local` makes them;
- replay: a generated Generative Agents workload whose calls carry filler prompts of the recorded sizes and ask
  for the recorded output lengths.

The server runs with `--ignore-eos` and without prompt reuse, so each call costs what the serving model is told:
its prompt prefilled in full and exactly `max_tokens` generated. The virtual run is the same simulation on the
fitted `ServingConfig`; its duration is the prediction, held to within 10% of the measured wall time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metropolis.agents import RandomWalker, WalkerConfig
from metropolis.agents.replay import replay_simulation
from metropolis.engine import Simulation
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.serving import Cluster, ServingConfig, VirtualLLM
from metropolis.runtime import AsyncioRuntime, Environment, VirtualRuntime
from metropolis.workloads import DayConfig, generate
from metropolis.world.smallville import Town

# Generative Agents makes about 56,700 calls a day for 25 agents: 0.26 calls per agent-step.
WALKER_CALLS_PER_STEP = 56_700 / (25 * 8_640)
# What a walker's short question ("<name> sees <n> people.") costs in SmolLM2's chat template, system turn included.
WALKER_PROMPT_TOKENS = 36
WALKER_OUTPUT_TOKENS = 22
TOLERANCE_PCT = 10.0

SimulationFactory = Callable[[str], Simulation]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """One workload of the bench: `kind` walkers or replay, `agents` personas, `hours` from `start_hour`."""

    kind: str
    agents: int
    hours: float
    start_hour: float = 12.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("walkers", "replay"):
            raise ValueError(f"workload kind must be walkers or replay, got {self.kind!r}")
        if self.agents < 1 or self.hours <= 0:
            raise ValueError("a workload needs at least one agent and a positive number of hours")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.agents} agents {self.hours * 60:g} min"


@dataclass(frozen=True, slots=True)
class PolicyRun:
    workload: str
    policy: str
    measured: float  # wall seconds against the real server
    predicted: float  # virtual seconds on the fitted serving model
    calls: int
    mean_in_flight: float
    predicted_in_flight: float
    prompt_tokens: int
    completion_tokens: int

    @property
    def error_pct(self) -> float:
        return (self.predicted - self.measured) / self.measured * 100


def simulation_factory(town: Town, spec: WorkloadSpec) -> SimulationFactory:
    """A function from a policy name to a fresh simulation of `spec` (the same agents, seed and window)."""
    if spec.kind == "walkers":
        steps = max(1, round(spec.hours * 3600 / town.world.seconds_per_step))
        config = WalkerConfig(
            call_prob=WALKER_CALLS_PER_STEP, prompt_tokens=WALKER_PROMPT_TOKENS, output_tokens=WALKER_OUTPUT_TOKENS
        )

        def walkers(policy: str) -> Simulation:
            agents = [RandomWalker(p.name, p.spawn, config) for p in town.personas[: spec.agents]]
            return Simulation(
                town.world, agents, until=steps, scheduler=policy, seed=spec.seed,
                start_seconds=spec.start_hour * 3600,
            )  # fmt: skip

        return walkers
    day = DayConfig(agents=spec.agents, start_hour=spec.start_hour, hours=spec.hours, seed=spec.seed)
    workload, layout = generate(town, day)
    world = layout.world(day.perception_radius)
    return lambda policy: replay_simulation(workload, world, policy, send_text=True)


async def measure(sim: Simulation, cfg: EndpointConfig) -> tuple[float, float, int, int, int]:
    """(wall seconds, mean requests in flight, calls, prompt tokens, output tokens) of `sim` run for real."""
    async with OpenAIClient(cfg) as client:
        report = await AsyncioRuntime(sim, client).run()
    return report.duration, report.mean_llm_in_flight, report.llm_calls, report.prompt_tokens, report.completion_tokens


def predict(sim: Simulation, serving: ServingConfig) -> tuple[float, float]:
    """(virtual seconds, mean requests in flight) of `sim` on the serving model, with llama-server's waiting
    queue: it ignores `priority` and gives a freed slot to the request that waited longest."""
    env = Environment()
    config = serving.replace(replicas=1, queue="fcfs")
    report = VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, config))).run()
    return report.duration, report.mean_llm_in_flight


def run_workload(
    make: SimulationFactory,
    label: str,
    policies: Sequence[str],
    cfg: EndpointConfig,
    serving: ServingConfig,
    progress: Callable[[str], None] | None = None,
) -> list[PolicyRun]:
    """Every policy on `make`'s workload: measured against `cfg`, predicted on `serving`."""
    out = []
    for policy in policies:
        if progress is not None:
            progress(f"{label}: {policy} (real)")
        measured, in_flight, calls, prompt, completion = asyncio.run(measure(make(policy), cfg))
        predicted, predicted_in_flight = predict(make(policy), serving)
        out.append(
            PolicyRun(label, policy, measured, predicted, calls, in_flight, predicted_in_flight, prompt, completion)
        )
    return out


def speedup(runs: Sequence[PolicyRun], policy: str, base: str, predicted: bool = False) -> float:
    """How many times faster `policy` ran than `base` on the same workload (measured, or predicted)."""
    by = {r.policy: r for r in runs}
    if predicted:
        return by[base].predicted / by[policy].predicted
    return by[base].measured / by[policy].measured


def same_ranking(runs: Sequence[PolicyRun]) -> bool:
    """Whether the prediction orders the policies as the measurement does."""
    return sorted(runs, key=lambda r: r.measured) == sorted(runs, key=lambda r: r.predicted)
