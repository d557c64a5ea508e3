"""A progress bar over agent-steps, for long runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from metropolis.engine import Simulation

console = Console(stderr=True)


@contextlib.contextmanager
def agent_step_progress(sim: Simulation, label: str | None = None) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)` for the runtime's progress callback; the bar disappears when done."""
    with agent_step_bar() as bar:
        task = bar.add_task(label or sim.scheduler.name, total=len(sim.agents) * sim.until)
        yield lambda n: bar.advance(task, n)


def agent_step_bar() -> Progress:
    """The bar itself, for commands that run several simulations under one bar (`bench sim`)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("agent-steps"),
        TimeElapsedColumn(), console=console, transient=True,
    )  # fmt: skip
