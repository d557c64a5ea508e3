"""One self-contained HTML page: a title, a headline, sections of text, tables and embedded plots.

Plots are matplotlib figures saved as PNG and embedded as data URLs, so the page opens from disk with no server
and no network. Tables are HTML, so they never need to fit a terminal.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 24px auto; color: #222; padding: 0 12px; }
h1 { margin-bottom: 4px; } .headline { font-size: 19px; background: #eef4f8; padding: 10px 14px; border-radius: 6px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; font-size: 13px; }
.wide { overflow-x: auto; max-width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 9px; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; } img { max-width: 100%; } pre { background: #f7f7f7; padding: 8px; }
"""


def figure_html(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>(none)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


@dataclass(slots=True)
class Page:
    title: str
    headline: str = ""
    parts: list[str] = field(default_factory=list)

    def section(self, title: str, body: str) -> Page:
        self.parts.append(f"<h2>{html.escape(title)}</h2>{body}")
        return self

    def text(self, words: str) -> str:
        return f"<p>{html.escape(words)}</p>"

    def html(self) -> str:
        head = f'<p class="headline">{html.escape(self.headline)}</p>' if self.headline else ""
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>{head}{''.join(self.parts)}"
            "</body></html>\n"
        )

    def write(self, path: Path) -> Path:
        path.write_text(self.html(), encoding="utf-8")
        return path
