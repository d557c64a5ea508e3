"""What `metropolis run` writes for a person: the headline (on screen and in report.html), report.json with what
reproduces the run, and the serial and lockstep times of the same run, computed alongside in virtual time."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from metropolis import __version__
from metropolis.cli.run_setup import RunOptions, build_simulation
from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, ReplayResponder, VirtualLLM, preset
from metropolis.report import Headline, write_run_report
from metropolis.report.headline import hardware_words
from metropolis.runtime import RunReport, VirtualRuntime
from metropolis.trace import Trace

COMPARED = ("serial", "lockstep")


def alongside(opts: RunOptions, responder: Callable[[], ReplayResponder | None]) -> dict[str, float]:
    """The virtual time of this run under the schedulers it is compared with (the same agents, seed, LLM); each
    run gets its own `responder()`, since a replay counts the calls it has answered."""
    times = {}
    for name in COMPARED:
        if name == opts.scheduler:
            continue
        sim, _, _ = build_simulation(dataclasses.replace(opts, scheduler=name, check=False))
        env = Environment()
        llm = VirtualLLM(env, Cluster(env, preset(opts.preset, gpus=opts.gpus)), responder())
        times[name] = VirtualRuntime(sim, env, llm).run().duration
    return times


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
