"""A bench's long table as a person reads it: one table per setting, with the columns a reader needs.

A bench writes one flat row per (setting, policy) to its CSV: 17 to 21 columns, 1,700 to 2,200 pixels wide on a
page, the same setting repeated on every row. A `TableView` pivots it: the columns that name the setting become
each table's title, and only the chosen columns, with short headers and formatted cells, stay; the CSV keeps
everything. `text_width` measures a table as plain text (each column as wide as its widest cell, two spaces
between), the measure the reports keep within 100 columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_WIDTH = 100  # characters: a table a reader takes in at once, on a page or a terminal

Format = Callable[[Any], str]


def plain(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def times(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}x"


def share(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def clock(value: Any) -> str:
    """Seconds as h:mm:ss."""
    if value is None:
        return "-"
    h, rest = divmod(round(float(value)), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def gigabytes(value: Any) -> str:
    return "-" if value is None else f"{float(value) / 1e9:.2f}"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    fmt: Format = plain


@dataclass(frozen=True, slots=True)
class TableView:
    """`title(row)` names a row's setting; rows with the same title form one table of `columns`."""

    title: Callable[[dict[str, Any]], str]
    columns: tuple[Column, ...]

    def split(self, rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, str]]]]:
        groups: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            cells = {c.header: c.fmt(row.get(c.key)) for c in self.columns}
            groups.setdefault(self.title(row), []).append(cells)
        return list(groups.items())


def text_width(rows: Sequence[dict[str, str]]) -> int:
    """The width of `rows` as a plain-text table: each column as wide as its widest cell or header."""
    if not rows:
        return 0
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    return sum(widths) + 2 * (len(widths) - 1)


def _sim_title(row: dict[str, Any]) -> str:
    gpus = int(row["gpus"])
    town = " (one large town)" if row.get("mode") == "large" and int(row["agents"]) > 25 else ""
    return (
        f"{row['setting']}: {row['agents']} agents{town}, {gpus} GPU{'s' if gpus > 1 else ''}, "
        f"{float(row['hours']):g} h, {int(row['calls']):,} LLM calls"
    )


# `bench sim`: one table per window and agent count, a row per policy and bound.
SIM = TableView(
    _sim_title,
    (
        Column("policy", "policy"),
        Column("sim_seconds", "time", clock),
        Column("speedup_over_serial", "x serial", times),
        Column("speedup_over_lockstep", "x lockstep", times),
        Column("share_of_oracle", "of oracle", share),
        Column("mean_in_flight", "in flight"),
        Column("restarts", "restarts"),
        Column("wasted_share", "wasted", share),
    ),
)


def _memory_title(row: dict[str, Any]) -> str:
    gpus = int(row["gpus"])
    lora = f", LoRA rank {row['lora_rank']}" if row.get("lora_rank") else ""
    return (
        f"{row['workload']}: {row['agents']} agents, {gpus} GPU{'s' if gpus > 1 else ''}, {row['scheduler']}, "
        f"{row['state']} state, GPU holds {float(row['fraction']):.0%}{lora}, {int(row['llm_calls']):,} LLM calls"
    )


# `bench memory`: one table per setting, a row per eviction policy.
MEMORY = TableView(
    _memory_title,
    (
        Column("policy", "policy"),
        Column("sim_seconds", "sim s", lambda v: f"{float(v):.1f}"),
        Column("hit_rate", "hits", share),
        Column("prefetch_hit_rate", "prefetched", share),
        Column("late_loads", "late"),
        Column("bytes_moved", "GB moved", gigabytes),
        Column("recompute_tokens", "recompute tok", lambda v: f"{int(v):,}"),
    ),
)
