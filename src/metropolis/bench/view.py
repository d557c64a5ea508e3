"""`metropolis bench view`: what the live view costs a run, measured side by side in one process.

The issue asks that the live view "never slows the run by more than a few percent". The same virtual run (the
Smallville personas as walkers, as `metropolis run` builds them, with an in-memory trace recorder, as every run
has) is timed three ways, interleaved so that a machine shared with other jobs drifts across all of them alike:
- `no view`: the run alone;
- `--view`: with the live source listening and the server serving, nobody watching;
- `--view + chromium`: with headless chromium following the page (`bench/view_client.py`, its own process),
  as a person watching would: every frame fetched, the scheduler layer on;
- `... chromium on its own core` (Linux, 2 cores or more): the same, with the run's process on one core and
  chromium on another, as on a machine with a core to spare. The difference between the two watched rows is
  what the browser's drawing takes from the run's core, not what the view costs the run.
Wall-clock, the run's own CPU time (the main thread) and the server's (this process's other threads) are measured
around the run alone, and chromium's CPU over the same span (its processes, read from /proc): on a machine with a
core to spare it is not the run's, on a busy one it takes the run's core. Ratios are taken within each repeat (the
three ways run back to back) and their median is printed, so a load that drifts between repeats cancels out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metropolis.agents import town_walkers
from metropolis.engine import Simulation
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.trace import TraceRecorder
from metropolis.viewer.server import make_app, serve
from metropolis.viewer.source import LiveSource
from metropolis.viewer.town import town_map
from metropolis.world.smallville import Town, load_smallville

MODES = ("no view", "--view", "--view + chromium", "--view + chromium on its own core")
PRESET = "l4-llama3-8b"


@dataclass(slots=True)
class ViewCost:
    """One way of running, over the repeats."""

    mode: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the run's thread
    server_cpu: list[float] = field(default_factory=list)  # the other threads: the viewer's server
    browser_cpu: list[float] = field(default_factory=list)
    wall_ratio: list[float] = field(default_factory=list)  # to the run without a view in the same repeat
    cpu_ratio: list[float] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)  # what the browser saw, per repeat

    @property
    def wall_s(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_s(self) -> float:
        return statistics.median(self.cpu)

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else 0.0


@dataclass(frozen=True, slots=True)
class Timed:
    wall: float
    cpu: float  # the run's thread
    server_cpu: float  # the process's other threads
    agent_steps: int
    virtual_seconds: float


def build(town: Town, hours: float, scheduler: str) -> tuple[Simulation, VirtualRuntime, TraceRecorder]:
    """The run `metropolis run --hours H -s S` makes (08:00, seed 0, one modelled L4), with a trace recorder."""
    steps = round(hours * 3600 / town.world.seconds_per_step)
    sim = Simulation(
        town.world, town_walkers((p.name, p.spawn) for p in town.personas), until=steps, scheduler=scheduler,
        start_seconds=8 * 3600,
    )  # fmt: skip
    recorder = TraceRecorder.for_simulation(sim, run_id="bench")
    sim.listeners.append(recorder)
    env = Environment()
    return sim, VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset(PRESET, gpus=1)))), recorder


def timed(runtime: VirtualRuntime, recorder: TraceRecorder) -> Timed:
    """The run and the writing of its trace (every run writes one, and a live view moves part of that work into
    the run: the recorder builds its row groups in pieces as steps come)."""
    wall, cpu, process = time.perf_counter(), time.thread_time(), time.process_time()
    report = runtime.run()
    recorder.close()
    mine = time.thread_time() - cpu
    others = time.process_time() - process - mine
    return Timed(time.perf_counter() - wall, mine, max(0.0, others), report.agent_steps, report.duration)


def one(town: Town, hours: float, scheduler: str, mode: str) -> tuple[Timed, float, dict[str, Any]]:
    """One run in `mode`: its times, the browser's CPU seconds, and what the browser saw."""
    sim, runtime, recorder = build(town, hours, scheduler)
    if mode == MODES[0]:
        return timed(runtime, recorder), 0.0, {}
    source = LiveSource.attach(sim, recorder)
    tilemap = sim.world.tilemap
    extent = (tilemap.width - 2, tilemap.height - 2) if tilemap is not None else (100, 100)
    url, server, thread = serve(make_app(source, town_map(sim.world.name, extent)))
    client = None
    cores = os.sched_getaffinity(0)
    try:
        if mode in MODES[2:]:
            client = _browser(url)
        if mode == MODES[3]:
            assert client is not None
            mine, its = sorted(cores)[:2]
            os.sched_setaffinity(0, {mine})  # every thread of this process: the run and the viewer's server
            for pid in tree_pids(client.pid):
                _pin(pid, its)
        before = tree_cpu(client.pid) if client is not None else 0.0
        result = timed(runtime, recorder)
        browser_cpu = tree_cpu(client.pid) - before if client is not None else 0.0
        seen = _finish(client) if client is not None else {}
        return result, browser_cpu, seen
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        server.should_exit = True
        thread.join(10)
        os.sched_setaffinity(0, cores)


def _pin(pid: int, core: int) -> None:
    """Every thread of process `pid` on `core`."""
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(task), {core})
    except (FileNotFoundError, ProcessLookupError):
        pass  # ended meanwhile


def own_core_possible() -> bool:
    """Whether the run and the browser can each have a core of their own here."""
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def tree_pids(root: int) -> list[int]:
    """Process `root` and its descendants, from /proc."""
    return list(_tree(root)[0])


def tree_cpu(root: int) -> float:
    """CPU seconds of process `root` and its descendants (chromium's processes under the Playwright client), from
    /proc; 0 where /proc is absent."""
    pids, spent = _tree(root)
    return sum(spent.get(pid, 0.0) for pid in pids)


def _tree(root: int) -> tuple[list[int], dict[int, float]]:
    """The pids of `root`'s process tree and every process's CPU seconds."""
    parent: dict[int, int] = {}
    spent: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parent[int(name)] = int(fields[1])
        spent[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    pids, stack = [], [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, ()))
    return pids, spent


def _browser(url: str) -> subprocess.Popen[str]:
    """Headless chromium on the page, ready before the run starts."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "metropolis.bench.view_client", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"the browser did not open the live view: {line or err.strip().splitlines()[-1:]}")
    return proc


def _finish(client: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = client.communicate(timeout=300)
    if client.returncode != 0:
        tail = err.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"the browser failed while following the run: {tail[0]}")
    seen: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return seen


def run_view_bench(
    hours: float = 3.0,
    repeats: int = 3,
    scheduler: str = "metropolis",
    browser: bool = True,
    progress: Callable[[str], None] = lambda m: None,
) -> list[ViewCost]:
    """Every mode `repeats` times, interleaved (the order rotates each repeat); raises if the views differ in what
    the run did (agent-steps or virtual time), which would mean the view changed the run."""
    town = load_smallville(agents=25)
    modes = list(MODES[:2] if not browser else MODES if own_core_possible() else MODES[:3])
    costs = {m: ViewCost(m) for m in modes}
    runs: set[tuple[int, float]] = set()
    for r in range(repeats):
        for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
            progress(f"{mode} ({r + 1} of {repeats})")
            result, browser_cpu, seen = one(town, hours, scheduler, mode)
            cost = costs[mode]
            cost.wall.append(result.wall)
            cost.cpu.append(result.cpu)
            cost.server_cpu.append(result.server_cpu)
            cost.browser_cpu.append(browser_cpu)
            if seen:
                cost.seen.append(seen)
            runs.add((result.agent_steps, round(result.virtual_seconds, 9)))
        for mode in modes:
            cost = costs[mode]
            cost.wall_ratio.append(cost.wall[-1] / costs[modes[0]].wall[-1])
            cost.cpu_ratio.append((cost.cpu[-1] + cost.server_cpu[-1]) / costs[modes[0]].cpu[-1])
    if len(runs) != 1:
        raise RuntimeError(f"the runs differ with and without the view: {sorted(runs)}")
    return [costs[m] for m in modes]
