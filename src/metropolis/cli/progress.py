"""A progress bar over agent-steps, for long runs; it also shows the LLM client's retries as they happen, so a
server that stalls is visible at once rather than after minutes of silence."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

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
    TimeRemainingColumn,
)
from rich.text import Text

from metropolis.engine import Simulation

console = Console(stderr=True)


class StepProgress:
    """`advance(n)` for the runtime's progress callback, `retry(what)` for the client's; counts what was done,
    so an interrupted run can say where it stopped.

    The runtime calls it at every commit, tens of thousands of times a second in virtual time, while the bar
    redraws ten times a second: so the count is exact at once, and the bar is told at most every `EVERY` seconds
    (and at `flush`)."""

    EVERY = 0.05

    def __init__(self, bar: Progress, task: TaskID, total: int, town: Callable[[], str] | None = None) -> None:
        self.bar = bar
        self.task = task
        self.total = total
        self.town = town
        self.done = 0
        self.retries = 0
        self._shown = 0
        self._shown_at = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self._shown_at >= self.EVERY:
            self.flush()

    def flush(self) -> None:
        """Show the count so far on the bar."""
        n, self._shown, self._shown_at = self.done - self._shown, self.done, time.monotonic()
        if self.town is None:
            self.bar.advance(self.task, n)
        else:
            self.bar.update(self.task, advance=n, town=self.town())

    def retry(self, what: str) -> None:
        self.retries += 1
        self.bar.update(self.task, note=f"[yellow]{self.retries} LLM retries; last: {what}")


class TownColumn(ProgressColumn):
    """The town clock: the time of day every agent has reached (the run's GVT), for a run that has one."""

    def render(self, task: Task) -> Text:
        town = task.fields.get("town", "")
        return Text(f"town {town}" if town else "", style="cyan")


class NoteColumn(ProgressColumn):
    """The task's `note` field (retries), empty for tasks that have none."""

    def render(self, task: Task) -> Text:
        return Text.from_markup(str(task.fields.get("note", "")))


@contextlib.contextmanager
def agent_step_progress(sim: Simulation, label: str | None = None) -> Iterator[StepProgress]:
    """Yields a `StepProgress` for the runtime's progress callback; the bar disappears when done."""
    with agent_step_bar() as bar:
        total = len(sim.agents) * sim.until
        task = bar.add_task(label or sim.scheduler.name, total=total, note="", town=town_clock(sim))
        progress = StepProgress(bar, task, total, lambda: town_clock(sim))
        try:
            yield progress
        finally:
            progress.flush()


def town_clock(sim: Simulation) -> str:
    """HH:MM of the step every agent has reached."""
    seconds = sim.start_seconds + sim.table.gvt() * sim.world.seconds_per_step
    return f"{int(seconds // 3600) % 24:02d}:{int(seconds % 3600 // 60):02d}"


def agent_step_bar() -> Progress:
    """The bar itself, for commands that run several simulations under one bar (`bench sim`)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("agent-steps"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TownColumn(), NoteColumn(), console=console,
        transient=True,
    )  # fmt: skip
