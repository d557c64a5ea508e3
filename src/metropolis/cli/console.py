"""Standard output for the commands that print tables."""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 120


def table_console(piped_width: int = PIPED_WIDTH) -> Console:
    """The terminal's width on a terminal; `piped_width` columns when piped or logged, where rich would assume 80
    and cut the column headers of a wide table ("measur…")."""
    console = Console()
    return console if console.is_terminal else Console(width=piped_width)
