"""What durability costs: one virtual-time run three ways side by side (with its trace only; with the journal
too but no checkpoints; with checkpoints at the given interval), each the fastest of `repeat` tries, and the
time a resume takes from a checkpoint halfway through, checked to end with the same report.

The target (issue 12): checkpoints at the default interval cost at most 5% of the wall time of the run with
checkpoints off. A resume re-executes from the start (see `runtime.checkpoint`), so its time is about that of
the whole run; the figure says so rather than hiding it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metropolis.engine.simulation import Simulation
from metropolis.llm.journal import JournalResponder
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.llm.serving.responder import PlaceholderResponder, Responder
from metropolis.runtime import Environment, RunReport, VirtualRuntime
from metropolis.runtime.durable import Durable
from metropolis.trace import TraceRecorder

Progress = Callable[[str], None]


class _Stop(Exception):
    """Stands for a kill halfway through the run."""


@dataclass(frozen=True, slots=True)
class CheckpointBench:
    agent_steps: int
    trace_s: float  # the trace only, as a run was before checkpoints
    off_s: float  # journal and trace parts, no checkpoints
    on_s: float  # checkpoints at the interval
    checkpoints: int
    checkpoint_s: float  # of on_s, spent saving checkpoints
    resume_s: float  # a resume from a checkpoint at half the agent-steps, to the end
    resumed_equal: bool  # the resumed run's report equals the uninterrupted one's
    off_cpu_s: float = 0.0  # CPU time (every thread) of the fastest try with checkpoints off
    on_cpu_s: float = 0.0  # and on: a steadier figure than wall time on a shared machine

    @property
    def overhead(self) -> float:
        """Checkpoints on against off, as a share of the wall time with them off."""
        return self.on_s / self.off_s - 1.0


def _comparable(report: RunReport) -> RunReport:
    return dataclasses.replace(report, wall_seconds=0.0)


def _run(sim: Simulation, preset_name: str, gpus: int, durable: Durable | None) -> tuple[RunReport, float]:
    report, seconds, _ = _timed(sim, preset_name, gpus, durable)
    return report, seconds


def _timed(sim: Simulation, preset_name: str, gpus: int, durable: Durable | None) -> tuple[RunReport, float, float]:
    """The run's report, its wall time and its CPU time (every thread: the I/O thread's work counts)."""
    env = Environment()
    answers: Responder = PlaceholderResponder()
    if durable is not None:
        answers = JournalResponder(answers, durable.journal)
    llm = VirtualLLM(env, Cluster(env, preset(preset_name, gpus=gpus)), answers)
    t0, c0 = time.perf_counter(), time.process_time()
    report = VirtualRuntime(sim, env, llm).run()
    if durable is not None:
        durable.finish()
    return report, time.perf_counter() - t0, time.process_time() - c0


def run_checkpoint_bench(
    make_sim: Callable[[], Simulation],
    preset_name: str,
    gpus: int,
    minutes: float,
    folder: Path,
    progress: Progress | None = None,
    repeat: int = 1,
) -> CheckpointBench:
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    say = progress or (lambda _: None)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    reports: list[RunReport] = []
    checkpoints, checkpoint_s = 0, float("inf")
    for k in range(repeat):
        for name, every in (("trace", None), ("off", 0.0), ("on", minutes)):
            say(f"try {k + 1} of {repeat}: {name}")
            sim = make_sim()
            (folder / f"{name}-{k}").mkdir(parents=True)
            if every is None:
                sim.listeners.append(recorder := TraceRecorder.for_simulation(sim, folder / f"{name}-{k}" / "trace"))
                report, seconds, cpu_s = _timed(sim, preset_name, gpus, None)
                recorder.close()
            else:
                with Durable.open(sim, folder / f"{name}-{k}", True, every, resume=False) as durable:
                    report, seconds, cpu_s = _timed(sim, preset_name, gpus, durable)
                    if name == "on":
                        checkpoints = durable.checkpointer.number
                        checkpoint_s = min(checkpoint_s, durable.checkpointer.seconds)
            if seconds < timings.get(name, float("inf")):
                timings[name], cpu[name] = seconds, cpu_s
            reports.append(_comparable(report))
    plain = reports[0]
    assert all(r == plain for r in reports), "durability changed the run"
    say("a run stopped halfway")
    sim = make_sim()
    half = plain.agent_steps // 2
    (folder / "stopped").mkdir(parents=True)
    with Durable.open(sim, folder / "stopped", True, minutes, resume=False) as durable:
        sim.listeners.append(_StopAt(sim, half))
        with contextlib.suppress(_Stop):  # as a kill -9 would: no last checkpoint
            _run(sim, preset_name, gpus, durable)
    say("its resume")
    sim = make_sim()
    t0 = time.perf_counter()
    with Durable.open(sim, folder / "stopped", True, minutes, resume=True) as durable:
        resumed, _ = _run(sim, preset_name, gpus, durable)
    resume_s = time.perf_counter() - t0
    return CheckpointBench(
        plain.agent_steps, timings["trace"], timings["off"], timings["on"], checkpoints, checkpoint_s, resume_s,
        _comparable(resumed) == plain, cpu["off"], cpu["on"],
    )  # fmt: skip


@dataclass(slots=True)
class _StopAt:
    sim: Simulation
    agent_steps: int

    def on_call(self, record: object) -> None:
        pass

    def on_step(self, record: object) -> None:
        if self.sim.agent_steps >= self.agent_steps:
            raise _Stop
