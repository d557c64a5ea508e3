"""The progress bar long commands share: agent-steps done of a run, with the elapsed time."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def agent_step_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} agent-steps"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
