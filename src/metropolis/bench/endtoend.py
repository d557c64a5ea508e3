"""End-to-end rows of `metropolis bench scheduler`: simulated LLM calls per wall second, whole runs in virtual time.

The micro-benchmark times the controller alone; these rows time everything a virtual-time run does per call
(agents, dispatcher, kernel, serving model, accounting), on the two workloads the redesign issue names:
- `day`: the 25 Smallville personas as walkers for a day on 8 modelled L4s, what
  `metropolis run --runtime virtual --gpus 8 --hours 24` runs (without its trace recorder);
- `busy`: the busy hour at 1,000 agents on 8 GPUs, the workload `metropolis bench sim --setting busy --agents 1000`
  generates, replayed under metropolis. Only the replay is timed, not the generation.
Each row says which code ran: the modules compiled at install (mypyc) or pure Python (`metropolis/compiled.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from metropolis.agents import town_walkers
from metropolis.bench.sim import PRESET, Setting, run_policy
from metropolis.compiled import describe
from metropolis.engine import Simulation
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.registry import lookup
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.workloads import DayConfig, generate
from metropolis.world.smallville import load_smallville


@dataclass(frozen=True, slots=True)
class EndToEndRow:
    row: str
    agent_steps: int
    llm_calls: int
    wall_seconds: float
    virtual_seconds: float
    cpu_seconds: float = 0.0  # this process's CPU time over the same span: steadier than wall on shared cores
    build: str = ""  # which code ran: compiled (mypyc) or pure Python (metropolis.compiled.describe)

    @property
    def calls_per_second(self) -> float:
        return self.llm_calls / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def calls_per_cpu_second(self) -> float:
        return self.llm_calls / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


def day_row(agents: int = 25, hours: float = 24.0, gpus: int = 8) -> EndToEndRow:
    """Smallville personas as walkers, metropolis, `gpus` modelled L4s: built as `metropolis run` builds it
    (start at 08:00, seed 0, priority on). The town's loading is not timed; building the run is."""
    town = load_smallville(agents=agents)
    steps = round(hours * 3600 / town.world.seconds_per_step)
    t0, c0 = time.perf_counter(), time.process_time()
    sim = Simulation(
        town.world, town_walkers((p.name, p.spawn) for p in town.personas), until=steps, scheduler="metropolis",
        start_seconds=8 * 3600,
    )  # fmt: skip
    env = Environment()
    runtime = VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset(PRESET, gpus=gpus))))
    report = runtime.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    label = f"day: {len(town.personas)} walkers, {hours:g} h, {gpus} GPUs"
    return EndToEndRow(label, report.agent_steps, report.llm_calls, wall, report.duration, cpu, describe())


def busy_row(agents: int = 1000, hours: float = 1.0, gpus: int = 8) -> EndToEndRow:
    """The busy hour's generated workload replayed under metropolis; the generation is not timed."""
    setting = Setting("busy", 12.0, hours, agents, gpus)
    config = DayConfig(agents=agents, start_hour=setting.start_hour, hours=hours, mode=setting.mode)
    workload, layout = generate(load_smallville(), config)
    world = layout.world(config.perception_radius, metric=setting.metric)
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_policy(workload, world, "metropolis", preset(PRESET, gpus=gpus), setting)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    label = f"busy: {agents:,} agents, {hours:g} h, {gpus} GPUs"
    steps = workload.agents * workload.steps
    return EndToEndRow(label, steps, result.calls, wall, result.sim_seconds, cpu, describe())


END_TO_END: dict[str, Callable[[], EndToEndRow]] = {"day": day_row, "busy": busy_row}


def end_to_end_names(text: str) -> list[str]:
    """`--end-to-end day,busy` (or `none`): the rows to run, each checked against the known names."""
    if text.strip() == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        lookup(END_TO_END, name, "end-to-end row")
    return names


def run_end_to_end(names: list[str], progress: Callable[[str], None] | None = None) -> list[EndToEndRow]:
    rows = []
    for name in names:
        if progress:
            progress(f"end to end: {name}")
        rows.append(END_TO_END[name]())
    return rows
