"""What `metropolis run` writes for a person: the headline (on screen and in report.html), report.json with what
reproduces the run, and the serial and lockstep times of the same run, computed alongside in virtual time
(`Alongside`: serial from the run's own calls, lockstep re-run beside the run in a second process)."""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pandas as pd

from metropolis.cli.run_setup import RunOptions, build_simulation
from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, ReplayResponder, ServingConfig, VirtualLLM, preset
from metropolis.llm.serving.job import Job
from metropolis.report import Headline, write_run_report
from metropolis.report.headline import hardware_words
from metropolis.runtime import RunReport, VirtualRuntime
from metropolis.trace import Trace
from metropolis.version import __version__

COMPARED = ("serial", "lockstep")


def solo_seconds(serving: ServingConfig, prompt: int, output: int) -> float:
    """How long one request takes on an idle cluster: measured on a fresh serving model, so it is the serving
    model's own answer (chunked prefill and all), not a formula beside it."""
    env = Environment()
    Cluster(env, serving).submit(Job("solo", max(1, prompt), output, 0))
    env.run()
    return float(env.now)


def serial_seconds(calls: pd.DataFrame, serving: ServingConfig) -> float:
    """The serial schedule's virtual time, from this run's calls: serial runs one agent-step at a time and a
    step's calls one after another, so every call has the cluster to itself, and the time is the sum of each
    call's latency on an idle cluster. A run makes the same calls under every scheduler (its result does not
    depend on the schedule), so this run's calls are serial's calls: the same figure as a re-run, in
    milliseconds (each distinct size is measured once) where a re-run took as long as the run itself."""
    if not len(calls):
        return 0.0
    sizes = calls.groupby(["prompt_tokens", "output_tokens"]).size().reset_index(name="n")
    solo = {
        (p, o): solo_seconds(serving, p, o)
        for p, o in zip(sizes["prompt_tokens"].tolist(), sizes["output_tokens"].tolist(), strict=True)
    }
    return math.fsum(
        solo[p, o] for p, o in zip(calls["prompt_tokens"].tolist(), calls["output_tokens"].tolist(), strict=True)
    )


def rerun_seconds(opts: RunOptions, scheduler: str, responder: Callable[[], ReplayResponder | None]) -> float:
    """The virtual time of this run under `scheduler` (the same agents, seed, LLM), run again."""
    sim, _, _ = build_simulation(dataclasses.replace(opts, scheduler=scheduler, check=False))
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, preset(opts.preset, gpus=opts.gpus)), responder())
    return VirtualRuntime(sim, env, llm).run().duration


def _lockstep_child(
    opts: RunOptions, responder: Callable[[], ReplayResponder | None], out: Connection, parent: int
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends this one
    threading.Thread(target=_orphaned, args=(parent,), daemon=True).start()
    try:
        out.send(rerun_seconds(opts, "lockstep", responder))
    except OSError:  # the parent is gone (killed): nobody wants the figure
        pass
    finally:
        out.close()


def _orphaned(parent: int) -> None:
    """A killed run (kill -9) cannot end this process: it ends itself once its parent is gone, so it never
    outlives the run (nor holds the run's output open)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


class Alongside:
    """The times of the same run under the schedulers the headline compares it with, in virtual time.

    Serial comes from the run's own calls once it is over (`serial_seconds`: milliseconds). Lockstep batches
    each step's calls across agents, so its time needs the run again; that re-run starts with the run, in a
    forked process, and the two go side by side on two cores (where there is one core it runs after the run).
    So a 24 h day costs the wall time of the slower of the two, not three runs one after another.
    """

    def __init__(self, opts: RunOptions, responder: Callable[[], ReplayResponder | None]) -> None:
        self.opts = opts
        self.responder = responder
        self.child: BaseProcess | None = None
        self.pipe: Connection | None = None

    @classmethod
    def start(cls, opts: RunOptions, responder: Callable[[], ReplayResponder | None]) -> Alongside:
        """Call before any thread starts (the viewer's server, the progress bar): the child is forked."""
        along = cls(opts, responder)
        if opts.scheduler != "lockstep" and _cores() > 1 and "fork" in mp.get_all_start_methods():
            ours, theirs = mp.get_context("fork").Pipe(duplex=False)
            child = mp.get_context("fork").Process(
                target=_lockstep_child,
                args=(opts, responder, theirs, os.getpid()),
                name="metropolis-lockstep",
                daemon=True,
            )
            child.start()
            theirs.close()
            along.child, along.pipe = child, ours
        return along

    def finish(self, calls: pd.DataFrame) -> dict[str, float]:
        times: dict[str, float] = {}
        if self.opts.scheduler != "serial":
            times["serial"] = serial_seconds(calls, preset(self.opts.preset, gpus=self.opts.gpus))
        if self.opts.scheduler != "lockstep":
            times["lockstep"] = self._lockstep()
        return times

    def _lockstep(self) -> float:
        if self.child is None or self.pipe is None:
            return rerun_seconds(self.opts, "lockstep", self.responder)
        try:
            return float(self.pipe.recv())
        except EOFError:  # the child died (killed, out of memory): time it here instead
            return rerun_seconds(self.opts, "lockstep", self.responder)
        finally:
            self.stop()

    def stop(self) -> None:
        """End the lockstep re-run (the run was stopped, or its figure is in)."""
        if self.child is not None:
            if self.child.is_alive():
                self.child.terminate()
            self.child.join(5)
            self.child = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def headline(opts: RunOptions, report: RunReport, seconds_per_step: float, compared: dict[str, float]) -> Headline:
    virtual = opts.runtime == "virtual"
    hardware = hardware_words(preset(opts.preset).note, opts.preset, opts.gpus) if virtual else (opts.llm or "no LLM")
    return Headline(report.steps * seconds_per_step, report.duration, virtual, hardware, compared)


def config(opts: RunOptions, run_id: str) -> dict[str, Any]:
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    return {"run_id": run_id, "version": __version__, "seed": opts.seed, "command": ["metropolis", *sys.argv[1:]],
            "options": fields}  # fmt: skip


def write(
    folder: Path,
    opts: RunOptions,
    report: RunReport,
    head: Headline,
    accounting: list[dict[str, Any]],
    trace: Trace,
) -> None:
    """report.json (the summary, the headline and what reproduces the run) and report.html."""
    setup = config(opts, folder.name)
    body = {**asdict(report), **setup, "headline": head.text(), "alongside": head.alongside}
    (folder / "report.json").write_text(json.dumps(body, indent=2))
    write_run_report(folder, trace, head, report.lines(), {**setup, "scheduler": opts.scheduler}, accounting)
