"""Entry point: `metropolis run`, `metropolis bench ...` and the other commands, one module each."""

from __future__ import annotations

import typer

from metropolis.cli import bench, calibrate, run, trace

app = typer.Typer(
    name="metropolis",
    help="Out-of-order execution engine for LLM-powered multi-agent simulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("calibrate")(calibrate.calibrate_cmd)
app.add_typer(bench.app, name="bench")
app.add_typer(trace.app, name="trace")


if __name__ == "__main__":
    app()
