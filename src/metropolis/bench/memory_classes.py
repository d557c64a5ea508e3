"""The axes of `metropolis bench memory` beyond the Smallville default: ScaleSim's workload classes and kinds
of per-agent state, and the estimator's error.

Workload classes (`--workload`), each generated with the bench's seed and replayed through the engine:

- `independent`: agents act alone; each next call follows from its action's known duration
  (`workloads.independent`): an exact plan, long idle stretches, no interaction;
- `smallville`: the generated Smallville day (interactions cut plans short; the distance is capped by the
  spatial bound: time until someone could come near);
- `diffusion`: posts spread hop by hop over a networkx follower graph (`workloads.diffusion`) on the graph
  world; the distance is hops from the propagation front (`FrontDistance`);
- `bursty`: the development stand-in (`bench/memory_workload.py`).

State kinds (`--state`): `kv` (the served model's KV prefix, plus a LoRA adapter per `--lora-rank`),
`model` (a whole small model per agent, `--agent-model`, served on a replica of that model) and `model+kv`
(that model and its own KV prefix).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.presets import A100, H100, L4, Gpu, preset, roofline
from metropolis.memory.state import AGENT_MODELS, LLAMA3_8B, ModelShape
from metropolis.registry import lookup
from metropolis.workloads.diffusion import DiffusionConfig, FrontDistance, diffusion_simulation, generate_diffusion
from metropolis.workloads.independent import IndependentConfig, generate_independent, independent_simulation
from metropolis.workloads.schedule import CallSchedule

WORKLOAD_CLASSES = ("independent", "smallville", "diffusion", "bursty")
SPATIAL_CLASSES = ("smallville", "bursty")  # where the spatial bound means "someone could come near"
STATES = ("kv", "model", "model+kv")
GPUS: dict[str, Gpu] = {"l4": L4, "a100": A100, "h100": H100}
SimulationFactory = Callable[[int, str], Simulation]  # (agents, scheduler name) -> a fresh simulation


def owns_model(state: str) -> bool:
    return state.startswith("model")


def state_shape(state: str, agent_model: str) -> ModelShape:
    """The model whose sizes the state has: the served Llama-3-8B, or the agent's own small model."""
    return lookup(AGENT_MODELS, agent_model, "agent model") if owns_model(state) else LLAMA3_8B


def serving_config(preset_name: str, state: str, agent_model: str, gpus: int) -> ServingConfig:
    """The replica: the preset, or for per-agent models a roofline replica of the small model on the preset's GPU
    (modelled as if requests of different agents' models batched like one model's: optimistic for the GPU)."""
    if not owns_model(state):
        return preset(preset_name, gpus=gpus)
    gpu = lookup(GPUS, preset_name.split("-")[0], "GPU of the preset")
    shape = state_shape(state, agent_model)
    return roofline(f"{preset_name.split('-')[0]}-{shape.name}", gpu, shape).replace(replicas=gpus)


def schedule_for(workload: str, agents: int, steps: int, seed: int) -> CallSchedule:
    if workload == "independent":
        return generate_independent(IndependentConfig(agents=agents, steps=steps, seed=seed))
    return generate_diffusion(DiffusionConfig(agents=agents, steps=steps, seed=seed))


def schedule_factory(workload: str, steps: int, seed: int) -> SimulationFactory:
    """`independent` and `diffusion`: the schedule generated once per agent count, replayed by every run; a
    diffusion run carries its front estimator, which publishes plans through the simulation."""
    cache: dict[int, CallSchedule] = {}

    def make(agents: int, scheduler: str) -> Simulation:
        if agents not in cache:
            cache[agents] = schedule_for(workload, agents, steps, seed)
        schedule = cache[agents]
        if workload == "independent":
            return independent_simulation(schedule, scheduler, seed)
        sim = diffusion_simulation(schedule, scheduler, seed)
        sim.listeners.append(FrontDistance(schedule, sim.publish_plan, lambda a: sim.table.step[a]))
        return sim

    return make


class EstimateLog:
    """The estimator's error: a listener that, whenever an agent commits a step in which it called the LLM,
    notes its invocation distance (what the memory policy reads now: steps from this step to its next call) and,
    at its next calling step, how many steps it actually was."""

    def __init__(self, distance: Callable[[int], float]) -> None:
        self.distance = distance
        self._last: dict[int, tuple[int, float]] = {}  # agent -> (step of its last calls, predicted distance)
        self.errors: list[float] = []
        self.unknown = 0  # predictions that were infinite (no estimate) although the agent called again

    def on_step(self, record: StepRecord) -> None:
        if not record.llm_calls:
            return
        agent, step = record.agent, record.step
        last = self._last.get(agent)
        if last is not None:
            actual = step - last[0]  # the listener hears of a step before the table counts it done
            if math.isfinite(last[1]):
                self.errors.append(abs(last[1] - actual))
            else:
                self.unknown += 1
        self._last[agent] = (step, self.distance(agent))

    def on_call(self, record: CallRecord) -> None:
        """Calls inside a step change nothing here."""

    def summary(self) -> tuple[float, float]:
        """(mean |predicted - actual| steps, share within one step); nan without any agent calling twice."""
        errors = self.errors
        if not errors:
            return math.nan, math.nan
        return sum(errors) / len(errors), sum(e <= 1 for e in errors) / len(errors)
