"""`metropolis trace ...`: import real traces, summarise them, look inside them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import integer, number, writable_folder
from metropolis.paths import shared_data_dir
from metropolis.trace.genagents import import_genagents, is_call_key
from metropolis.trace.jsonrecords import iter_records, read_text
from metropolis.trace.movement import import_movement
from metropolis.trace.stats import conversation_reach, summary
from metropolis.trace.store import Trace
from metropolis.trace.tokens import make_counter

app = typer.Typer(help="Record, import and summarise traces (LLM calls and agent-steps).", no_args_is_help=True)

GENAGENTS_FILE = Path("genagents-trace") / "redis_data.json"
MOVEMENT_FILE = Path("smallville") / "day_n3" / "master_movement.json"

Out = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the trace into.")]


def shared_file(path: Path | None, default: Path) -> Path:
    if path is not None:
        return path
    data = shared_data_dir()
    if data is None:
        raise FileNotFoundError("cannot find the shared data folder; pass the file's path")
    return data / default


def load(target: Path, radius: float = 4.0) -> Trace:
    """A trace folder, a run folder (its `trace/`, as `run --replay` takes it), or a raw export recognised by its
    first key: `persona:step:...` or a step number."""
    if target.is_dir():
        inner = target / "trace"
        return Trace.read(
            inner if (inner / "meta.json").is_file() and not (target / "calls.parquet").exists() else target
        )
    if not target.exists():
        raise FileNotFoundError(f"no trace folder or export file at {target}")
    first = next(iter_records(read_text(target), str(target)), None)
    if first is None:
        raise ValueError(f"{target}: empty export, nothing to summarise")
    if first[0].strip().isdigit():
        return import_movement(target, radius=radius)
    if is_call_key(first[0]) or first[0] == "run":
        return import_genagents(target)
    raise ValueError(f"{target}: neither a Generative Agents call export nor a movement log (first key {first[0]!r})")


@app.command("import-genagents")
@one_line_errors
def import_genagents_cmd(
    out: Out,
    path: Annotated[Path | None, typer.Argument(help="redis_data.json (default: the shared copy).")] = None,
    tokenizer: Annotated[str, typer.Option(help="auto, smollm2 or chars/4.")] = "auto",
    text: Annotated[bool, typer.Option("--text/--no-text", help="Keep prompt and output text.")] = True,
) -> None:
    """Import the Generative Agents LLM-call export as a trace."""
    writable_folder(out, "--out")
    source = shared_file(path, GENAGENTS_FILE)
    trace = import_genagents(source, counter=make_counter(tokenizer), keep_text=text)
    trace.write(out)
    skipped = trace.meta.extra["skipped_keys"]
    typer.echo(
        f"{len(trace.calls)} calls of {len(trace.meta.agent_names)} agents -> {out} "
        f"(tokens: {trace.meta.extra['tokenizer']}; skipped {len(skipped)} non-call keys: "
        f"{', '.join(skipped) or '-'})"
    )


@app.command("import-movement")
@one_line_errors
def import_movement_cmd(
    out: Out,
    path: Annotated[Path | None, typer.Argument(help="master_movement.json (default: the shared day_n3).")] = None,
    radius: Annotated[float, typer.Option(help="Observation radius R in tiles (the paper: 4).")] = 4.0,
) -> None:
    """Import a Generative Agents movement log as dense agent-steps and conversations."""
    radius = number(radius, "--radius", 0, 1e6, low_open=True)
    writable_folder(out, "--out")
    source = shared_file(path, MOVEMENT_FILE)
    trace = import_movement(source, radius=radius)
    trace.write(out)
    typer.echo(
        f"{len(trace.steps)} agent-steps of {len(trace.meta.agent_names)} agents over {trace.num_steps} "
        f"steps, {len(trace.conversations)} conversations -> {out}"
    )
    reach = conversation_reach(trace)
    if reach > radius:
        enough = math.ceil(reach * 10) / 10
        typer.echo(
            f"note: conversations here start up to {reach:.1f} tiles apart, beyond R = {radius:g}: a replay of this "
            f"trace at R = {radius:g} cannot start them as recorded; import with --radius {enough:g} "
            "or more to replay the day as it was"
        )


@app.command("stats")
@one_line_errors
def stats_cmd(
    target: Annotated[Path, typer.Argument(help="A trace folder, or a raw export file.")],
    radius: Annotated[float, typer.Option(help="Observation radius for a raw movement log.")] = 4.0,
) -> None:
    """Print the statistics a workload generator is tuned to."""
    number(radius, "--radius", 0, 1e6, low_open=True)
    for line in summary(load(target, radius)):
        typer.echo(line)


@app.command("show")
@one_line_errors
def show_cmd(
    folder: Annotated[Path, typer.Argument(help="A trace folder.")],
    rows: Annotated[int, typer.Option(help="Rows per table.")] = 5,
) -> None:
    """Print a trace's metadata and the first rows of its tables."""
    integer(rows, "--rows", 0, 1_000_000)
    if not folder.is_dir():
        raise FileNotFoundError(f"no trace folder at {folder}")
    trace = load(folder)
    typer.echo(trace.meta.to_json())
    with pd.option_context("display.max_columns", None, "display.width", 160, "display.max_colwidth", 40):
        for name, frame in trace.tables().items():
            typer.echo(f"\n{name}: {len(frame)} rows")
            if not frame.empty:
                typer.echo(frame.head(rows).to_string())
