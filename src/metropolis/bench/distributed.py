"""`metropolis bench distributed`: what the Ray runtime buys, measured side by side in one run, as ratios.

- CPU-bound agents: each step spends a fixed CPU time (what embedding and retrieval cost a generative agent) and
  makes one call to a loopback server with a fixed latency. The asyncio runtime runs every step in one process;
  the Ray runtime on `workers` workers. Row: agent-steps per second, Ray over asyncio (target >= 1.7x on 2 cores).
- Many agents: 1,000 agents, each step one call to a loopback server with 1 s latency, on the Ray runtime. Rows:
  the LLM requests in flight as a share of the agents the policy has running (dispatched, not yet committed; each
  running agent's step is one call, so a runtime that adds nothing holds all of them at the server: target
  >= 80%), and the controller's overhead per unit: its CPU time per unit (target <= 2 ms), and beside it, for
  information, dispatch to commit less the worker's time for the unit (which includes Ray's transport and the
  wait for the controller's loop).
- The store's cost per commit (Redis vs the embedded store): the store bench's rows (`store_rows`, from
  bench/store_cost.py, as `metropolis bench store` measures them), with fewer rounds.

Agents stand on a sparse grid (spacing 4, R = 1, V = 1) so that units are single agents: the bench measures the
runtime, not the policy.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from metropolis.bench.store_cost import run_store_cost
from metropolis.engine import Agent, Simulation, StepContext
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.runtime import AsyncioRuntime, RunReport
from metropolis.world.world import World

SPACING = 4


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One figure: what it is, its value and unit, its target (None: for information) and whether it is met."""

    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None


def store_rows(url: str | None = None) -> list[BenchRow]:
    """Redis vs the embedded SQLite store, per commit (medians of 3 alternating rounds): for information."""
    return [
        BenchRow(f"store: {r.operation}, Redis / SQLite ({r.redis_us:.0f} vs {r.sqlite_us:.0f} us)", r.ratio, "x")
        for r in run_store_cost(url, puts=200, checkpoints=10, agents=25, state_bytes=2048, rounds=3)
    ]


class BusyAgent(Agent):
    """Spins `cpu_seconds` of CPU, asks the LLM one short question, and takes one random step on its own tile
    row (it never leaves its column of the grid, so it never meets another agent)."""

    def __init__(self, name: str, pos: tuple[int, int], cpu_seconds: float) -> None:
        super().__init__(name, pos, action="working")
        self.cpu_seconds = cpu_seconds
        self.steps = 0

    async def step(self, ctx: StepContext) -> None:
        ctx.observe()
        spin(self.cpu_seconds)
        await ctx.llm("think", f"{self.name} at step {ctx.step}", max_tokens=1)
        x, y = self.start_pos
        ctx.move((x + ctx.rng.choice((0, 1)), y))
        self.steps += 1


def spin(seconds: float) -> None:
    """Busy CPU for `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def busy_simulation(agents: int, steps: int, cpu_seconds: float, seed: int = 0) -> Simulation:
    side = max(1, round(agents**0.5))
    world = World(perception_radius=1.0, max_velocity=1.0, name="grid")
    crowd = [BusyAgent(f"a{i}", ((i % side) * SPACING, (i // side) * SPACING), cpu_seconds) for i in range(agents)]
    return Simulation(world, crowd, until=steps, scheduler="metropolis", seed=seed)


def endpoint(base_url: str, in_flight: int) -> EndpointConfig:
    return EndpointConfig(
        base_url=base_url, model="loopback", api_key_env=None, max_in_flight=in_flight, read_timeout=600.0
    )


def on_asyncio(sim: Simulation, base_url: str) -> RunReport:
    async def go() -> RunReport:
        async with OpenAIClient(endpoint(base_url, len(sim.agents))) as client:
            return await AsyncioRuntime(sim, client).run()

    return asyncio.run(go())


@dataclass(frozen=True, slots=True)
class RayRun:
    report: RunReport
    controller_cpu_ms: float  # controller CPU time per unit
    overhead_ms: float  # dispatch to commit less the worker's time, per unit


def on_ray(sim: Simulation, base_url: str, workers: int) -> RayRun:
    from metropolis.runtime.ray import RayRuntime, WorkerPool

    pool = WorkerPool(sim, workers, endpoint(base_url, len(sim.agents)), cpus_per_worker=0)
    try:
        pool.wait_ready()
        runtime = RayRuntime(sim, pool)
        cpu = time.process_time()
        report = asyncio.run(runtime.run())
        cpu = time.process_time() - cpu
    finally:
        pool.close()
    return RayRun(report, 1000 * cpu / max(1, report.units), runtime.overhead_ms())


def rate(report: RunReport) -> float:
    return report.agent_steps / report.wall_seconds if report.wall_seconds > 0 else 0.0


def parallel_ceiling(workers: int, seconds: float = 0.5) -> float:
    """What this machine gives CPU work spread over `workers` Ray processes, as a multiple of one process: the
    most the Ray runtime's ratio can reach here (2.0 on 2 idle cores, much less on a shared machine)."""
    import ray

    def timed() -> float:
        began = time.perf_counter()
        spin(seconds)
        return time.perf_counter() - began

    task = ray.remote(timed).options(num_cpus=0)
    ray.get([task.remote() for _ in range(workers)])  # as many worker processes started, and warm, as measured
    alone = timed()
    began = time.perf_counter()
    ray.get([task.remote() for _ in range(workers)])
    return workers * alone / (time.perf_counter() - began)


def cpu_bound_rows(base_url: str, agents: int, steps: int, cpu_ms: float, workers: int) -> list[BenchRow]:
    ceiling = parallel_ceiling(workers)
    alone = on_asyncio(busy_simulation(agents, steps, cpu_ms / 1000), base_url)
    spread = on_ray(busy_simulation(agents, steps, cpu_ms / 1000), base_url, workers).report
    ratio = rate(spread) / rate(alone) if rate(alone) > 0 else 0.0
    what = f"{agents} agents x {steps} steps, {cpu_ms:g} ms CPU + 1 call each"
    return [
        BenchRow(f"asyncio runtime: agent-steps/s ({what})", rate(alone), "/s"),
        BenchRow(f"ray runtime, {workers} workers: agent-steps/s", rate(spread), "/s"),
        BenchRow(f"ray {workers} workers / asyncio", ratio, "x", ">= 1.7x", ratio >= 1.7),
        BenchRow(f"this machine: CPU work in {workers} processes / in 1 (the ratio's ceiling here)", ceiling, "x"),
    ]


def many_agents_rows(base_url: str, agents: int, steps: int, workers: int) -> list[BenchRow]:
    run = on_ray(busy_simulation(agents, steps, 0.0), base_url, workers)
    report = run.report
    held = 100 * report.mean_llm_in_flight / report.mean_running_agents if report.mean_running_agents else 0.0
    return [
        BenchRow(f"{agents} agents x {steps} steps: LLM requests in flight (mean)", report.mean_llm_in_flight, ""),
        BenchRow("agents the policy has running (mean)", report.mean_running_agents, ""),
        BenchRow("requests in flight / agents running", held, "%", ">= 80%", held >= 80),
        BenchRow("controller CPU per unit", run.controller_cpu_ms, "ms", "<= 2 ms", run.controller_cpu_ms <= 2),
        BenchRow("dispatch to commit less worker time, per unit", run.overhead_ms, "ms"),
    ]
