"""`metropolis resume RUN`: continue a run that stopped (Ctrl-C, SIGTERM, a failure, kill -9) to its end.

The run's options come from its `meta.json`; its store holds the LLM journal and the last checkpoint. The run
is re-executed deterministically from its start (see `runtime.checkpoint` for why this is the exact way),
answering every journaled call from the journal, so no LLM call is made twice; steps the checkpoint's trace
parts already hold are not written again. The final state, trace and report equal those of a run never
stopped: exactly in virtual time, and given the journal with a real LLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from metropolis.cli.errors import one_line_errors
from metropolis.cli.run import execute
from metropolis.cli.run_folder import META, RunFolder
from metropolis.cli.run_setup import RunOptions

RESUMABLE = ("running", "interrupted", "terminated", "failed")
_PATHS = ("out_dir", "replay")


def resume(
    run: Path = typer.Argument(..., help="The run folder of the run to continue."),
) -> None:
    """Continue an interrupted run to its end; journaled LLM calls are answered from the journal."""
    _resume(run)


@one_line_errors
def _resume(run: Path) -> None:
    meta_file = run / META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{run}: no {META}, so not a run folder")
    try:
        meta: dict[str, Any] = json.loads(meta_file.read_text())
        options = options_of(meta["options"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{meta_file}: not a run's meta.json ({error})") from None
    status = meta.get("status")
    if status not in RESUMABLE:
        raise ValueError(f"{run}: the run is {status}; only a run that stopped early can resume")
    folder = RunFolder(run, chosen=True, meta=meta, created=True)
    execute(options.resolved(), folder, float(meta.get("checkpoint_minutes", 0.0)), resume=True)


def options_of(fields: dict[str, Any]) -> RunOptions:
    """The `RunOptions` a run recorded in its meta.json (paths and tuples as JSON wrote them)."""
    values = dict(fields)
    for name in _PATHS:
        if values.get(name) is not None:
            values[name] = Path(values[name])
    values["genagent"] = tuple(values.get("genagent", ()))
    return RunOptions(**values)
