"""Reports a person reads: `report.html` for every run and for `bench sim` / `bench memory`, self-contained (plots
are embedded images, no server, no network), opening from disk."""

from metropolis.report.headline import Headline, duration_words
from metropolis.report.page import Page
from metropolis.report.run import write_run_report

__all__ = ["Headline", "Page", "duration_words", "write_run_report"]
