"""Standard output for the commands that print tables."""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 120


def table_console() -> Console:
    """The terminal's width on a terminal; `PIPED_WIDTH` columns when piped or logged, where rich would assume 80
    and cut the column headers of a wide table ("measur…")."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)
