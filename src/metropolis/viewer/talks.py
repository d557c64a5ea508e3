"""One agent's conversations, as the detail panel lists them: when, with whom, and what was said.

A trace imported from a movement log has a conversations table (who said what, in order); an engine run has
none, but every step row says whom the step wrote into (`partners`: `ctx.partner`, a conversation) and what was
said at it (its `events`: "Speaker: line" from a generative agent, "A greets B" from a walker). Consecutive
steps with partners are one conversation, so a live run and a replay list the same conversations.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def from_table(table: pd.DataFrame, agent: int, names: list[str]) -> list[dict[str, Any]]:
    """The rows of a conversations table that `agent` took part in."""
    out = []
    for row in table.to_dict("records"):
        speakers: list[Any] = list(row["speakers"])
        out.append(
            {
                "start": int(row["start"]),
                "end": int(row["end"]),
                "with": sorted({int(p) for p in row["participants"]} - {agent}),
                "lines": [f"{names[int(s)]}: {u}" for s, u in zip(speakers, row["utterances"], strict=True)],
            }
        )
    return sorted(out, key=lambda c: c["start"])


def from_steps(history: pd.DataFrame, agent: int) -> list[dict[str, Any]]:
    """Runs of consecutive steps of `agent` that have partners, each with its partners and lines."""
    if not len(history) or "partners" not in history:
        return []
    out: list[dict[str, Any]] = []
    rows = history.sort_values("step")
    events = rows["events"] if "events" in rows else pd.Series([None] * len(rows))
    for step, partners, lines in zip(rows["step"], rows["partners"], events, strict=True):
        others = {int(p) for p in (() if partners is None else partners)} - {agent}
        if not others:
            continue
        spoken = [str(e) for e in (() if lines is None else lines)]
        last = out[-1] if out else None
        if last is not None and last["end"] == int(step) - 1:
            last["end"] = int(step)
            last["with"] = sorted(set(last["with"]) | others)
            last["lines"].extend(spoken)
        else:
            out.append({"start": int(step), "end": int(step), "with": sorted(others), "lines": spoken})
    return out
