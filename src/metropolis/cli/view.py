"""`metropolis view RUN`: replay a run folder in the browser (the town, each agent, the scheduler's picture).

Serves on 127.0.0.1 only and prints its URL; Ctrl-C stops it. A folder that is not a run is one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import typer

from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import integer
from metropolis.viewer.server import make_app, serve
from metropolis.viewer.source import TraceSource
from metropolis.viewer.town import town_map


def view(
    run: Path = typer.Argument(..., help="A run folder (from `metropolis run`) or a trace folder."),
    port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (default: a free one)."),
) -> None:
    """Replay a run in the browser: the town map, every agent, its calls, and who waits on whom."""
    _view(run, port)


@one_line_errors
def _view(run: Path, port: int) -> None:
    if port:
        integer(port, "--port", 1, 65_535)
    source = TraceSource(run)
    timeline = source.timeline()
    extent = (int(pc.max(timeline["x"]).as_py()), int(pc.max(timeline["y"]).as_py())) if len(timeline) else (10, 10)
    url, server, thread = serve(make_app(source, town_map(source.meta.world, extent)), port or None)
    print(f"metropolis view: {url}  (Ctrl-C to stop)", flush=True)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(5)
