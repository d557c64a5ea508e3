"""The HTML report of a benchmark (`bench sim`, `bench memory`): its tables and the plots it already drew, in one
self-contained page beside its CSV."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from metropolis.report.page import Page, table_html
from metropolis.report.tables import TableView


def image_html(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_bench_report(
    path: Path,
    title: str,
    headline: str,
    tables: list[tuple[str, list[dict[str, Any]]]],
    images: list[tuple[str, Path]],
    note: str = "",
    view: TableView | None = None,
) -> Path:
    """`tables` as (title, rows) and `images` as (title, PNG file); images that were not drawn are left out.
    With a `view`, each table is shown as one small table per setting (the CSV beside it has every column)."""
    page = Page(title, headline)
    if note:
        page.parts.append(page.text(note))
    for name, rows in tables:
        if view is None:
            page.section(name, table_html(rows))
            continue
        parts = [f"<h3>{html.escape(setting)}</h3>{table_html(cells)}" for setting, cells in view.split(rows)]
        page.section(name, "".join(parts) or "<p>(none)</p>")
    for name, image in images:
        if image.is_file():
            page.section(name, image_html(image, name))
    return page.write(path)
