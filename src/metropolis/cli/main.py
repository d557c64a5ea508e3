"""Entry point: `metropolis run`, `metropolis bench ...` and the other commands, one module each.

Every failure is one line on stderr with a documented exit code (`cli/errors.py`): the command group below
turns click's usage errors (`--agents abc`) into that line too, instead of a usage box.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer._click import exceptions as click  # typer's own copy of click
from typer.core import TyperGroup

from metropolis.cli import bench, calibrate, resume, run, sweep, trace, view
from metropolis.cli.errors import EXIT_BAD_INPUT, one_line, report


class OneLineGroup(TyperGroup):
    """The root command: runs in click's non-standalone mode and prints every error as one line."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.NoArgsIsHelpError as error:
            error.show()  # a bare group: its help is the answer (exit code 2, as click has it)
            sys.exit(error.exit_code)
        except click.UsageError as error:
            where = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
            print(f"metropolis: error: {one_line(error.format_message())}{where}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as error:
            print(f"metropolis: error: {one_line(error.format_message())}", file=sys.stderr)
            sys.exit(error.exit_code)
        except typer.Abort:
            sys.exit(report(KeyboardInterrupt()))
        except (Exception, KeyboardInterrupt) as error:  # a command without its own handler
            sys.exit(report(error))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="metropolis",
    cls=OneLineGroup,
    help="Out-of-order execution engine for LLM-powered multi-agent simulation. Exit codes: 0 done, 2 bad input, "
    "3 failed at run time (LLM server, a step, disk), 4 internal error, 130 interrupted, 143 terminated.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("resume")(resume.resume)
app.command("calibrate")(calibrate.calibrate_cmd)
app.command("sweep")(sweep.sweep)
app.command("view")(view.view)
app.add_typer(bench.app, name="bench")
app.add_typer(trace.app, name="trace")


if __name__ == "__main__":
    app()
