"""A progress bar over agent-steps, for long runs; it also shows the LLM client's retries as they happen, so a
server that stalls is visible at once rather than after minutes of silence."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from metropolis.engine import Simulation

console = Console(stderr=True)


class StepProgress:
    """`advance(n)` for the runtime's progress callback, `retry(what)` for the client's; counts what was done,
    so an interrupted run can say where it stopped."""

    def __init__(self, bar: Progress, task: TaskID, total: int) -> None:
        self.bar = bar
        self.task = task
        self.total = total
        self.done = 0
        self.retries = 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.bar.advance(self.task, n)

    def retry(self, what: str) -> None:
        self.retries += 1
        self.bar.update(self.task, note=f"[yellow]{self.retries} LLM retries; last: {what}")


class NoteColumn(ProgressColumn):
    """The task's `note` field (retries), empty for tasks that have none."""

    def render(self, task: Task) -> Text:
        return Text.from_markup(str(task.fields.get("note", "")))


@contextlib.contextmanager
def agent_step_progress(sim: Simulation, label: str | None = None) -> Iterator[StepProgress]:
    """Yields a `StepProgress` for the runtime's progress callback; the bar disappears when done."""
    with agent_step_bar() as bar:
        total = len(sim.agents) * sim.until
        task = bar.add_task(label or sim.scheduler.name, total=total, note="")
        yield StepProgress(bar, task, total)


def agent_step_bar() -> Progress:
    """The bar itself, for commands that run several simulations under one bar (`bench sim`)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("agent-steps"),
        TimeElapsedColumn(), NoteColumn(), console=console, transient=True,
    )  # fmt: skip
