"""`report.html` of one run: the headline, parallelism over time, the town with each agent's path, per-agent
tokens and cost, and the full configuration."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from metropolis.report.headline import Headline
from metropolis.report.page import Page, figure_html, table_html
from metropolis.trace.store import Trace
from metropolis.viewer.town import town_map

MAX_PATHS = 60  # agents whose paths are drawn labelled; a bigger run draws every path thin, unlabelled
HOW = {"serial": "this run's calls, each alone on an idle cluster (as serial runs them)"}


def in_flight(start: np.ndarray, end: np.ndarray, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """How many of the intervals [start, end) are open over time (each counting `weight`), as a step function."""
    keep = end > start
    w = np.ones(keep.sum()) if weight is None else weight[keep].astype(float)
    times = np.concatenate([start[keep], end[keep]])
    delta = np.concatenate([w, -w])
    order = np.lexsort((delta, times))
    return times[order], np.cumsum(delta[order])


def running_agents(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Agents running over time: every member of a unit runs from the unit's first start to its last end (the
    members step one after another). Without the unit column, each step's own span."""
    if "unit" in steps and steps["unit"].notna().all() and len(steps):
        units = steps.groupby("unit").agg(start=("start", "min"), end=("end", "max"), n=("agent", "size"))
        return in_flight(units["start"].to_numpy(float), units["end"].to_numpy(float), units["n"].to_numpy())
    return in_flight(steps["start"].to_numpy(float), steps["end"].to_numpy(float))


def parallelism_figure(trace: Trace, clock: str) -> str:
    fig, axes = plt.subplots(2, 1, figsize=(10, 4.6), sharex=True)
    series = [("agents running", running_agents(trace.steps), "tab:blue")]
    if len(trace.calls):
        calls = trace.calls
        series.append(
            (
                "LLM requests in flight",
                in_flight(calls["start"].to_numpy(float), calls["end"].to_numpy(float)),
                "tab:orange",
            )
        )
    for ax, (label, (t, n), color) in zip(axes, series, strict=False):
        ax.step(t / 60, n, where="post", color=color, linewidth=0.8)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(f"{clock} time (min)")
    axes[0].set_title("Agents running and LLM requests in flight, over the whole run")
    return figure_html(fig, "agents running and requests in flight over time")


def paths_figure(trace: Trace) -> str:
    steps = trace.steps
    extent = (int(steps["x"].max()), int(steps["y"].max())) if len(steps) else (10, 10)
    town = town_map(trace.meta.world, extent)
    fig, ax = plt.subplots(figsize=(10, 10 * town["height"] / max(1, town["width"])))
    if town["walls"]:
        ax.imshow(np.array(town["walls"]), cmap="Greys", vmin=0, vmax=2.5, interpolation="nearest")
    names = trace.meta.agent_names
    cmap = plt.get_cmap("tab20")
    paths = list(steps.sort_values("step").groupby("agent"))
    if len(paths) > MAX_PATHS:  # a big run: every path thin and unlabelled, drawn as one collection
        lines = [np.column_stack([rows["x"], rows["y"]]) for _, rows in paths]
        colors = [cmap(int(str(key)) % 20) for key, _ in paths]
        ax.add_collection(LineCollection(lines, colors=colors, linewidths=0.6, alpha=0.5))
        ends = np.array([line[-1] for line in lines])
        ax.scatter(ends[:, 0], ends[:, 1], s=3, c=colors, zorder=3)
        ax.set_title(f"Each agent's path, all {len(paths):,} (dot: where it ended)")
    for key, rows in paths if len(paths) <= MAX_PATHS else ():
        agent = int(str(key))
        color = cmap(agent % 20)
        ax.plot(rows["x"], rows["y"], color=color, linewidth=1.2, alpha=0.85)
        ax.plot(rows["x"].iloc[-1], rows["y"].iloc[-1], "o", color=color, markersize=5)
        ax.annotate(names[agent], (rows["x"].iloc[-1], rows["y"].iloc[-1]), fontsize=7, color="black")
    if len(paths) <= MAX_PATHS:
        ax.set_title("Each agent's path (dot: where it ended)")
    ax.set_xlim(-0.5, town["width"] - 0.5)
    ax.set_ylim(town["height"] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return figure_html(fig, "the town map with each agent's path")


def write_run_report(
    folder: Path,
    trace: Trace,
    headline: Headline,
    summary: list[str],
    config: dict[str, Any],
    accounting: list[dict[str, Any]],
) -> Path:
    clock = "virtual" if headline.virtual else "wall"
    page = Page(f"Metropolis run {config.get('run_id') or folder.name}", headline.text())
    page.section("Summary", f"<pre>{html.escape(chr(10).join(summary))}</pre>")
    if headline.alongside:
        took = headline.took_seconds
        rows = [{"scheduler": config.get("scheduler", "this run"), "time (s)": took, "this run is": "",
                 "how": "this run"}]  # fmt: skip
        rows += [
            {"scheduler": name, "time (s)": t, "this run is": f"{t / took:.2f}x faster" if took > 0 else "",
             "how": HOW.get(name, "the run again under this scheduler")}
            for name, t in headline.alongside.items()
        ]  # fmt: skip
        page.section(f"The same run under other schedulers ({clock} time)", table_html(rows))
    page.section("Parallelism", parallelism_figure(trace, clock))
    page.section("The town", paths_figure(trace))
    tokens = table_html(accounting) if accounting else _tokens(trace.calls)
    agents = len(trace.meta.agent_names)
    if agents > MAX_PATHS:  # a thousand rows: folded, so the page stays a page
        tokens = f"<details><summary>{agents:,} agents: show the table</summary>{tokens}</details>"
    page.section("Tokens and cost per agent", tokens)
    page.section("Configuration", f"<pre>{html.escape(json.dumps(config, indent=2, default=str))}</pre>")
    return page.write(folder / "report.html")


def _tokens(calls: pd.DataFrame) -> str:
    if not len(calls):
        return "<p>(no LLM calls)</p>"
    grouped = calls.groupby("name", observed=True)[["prompt_tokens", "output_tokens"]].sum().reset_index()
    return table_html([{str(k): v for k, v in row.items()} for row in grouped.to_dict("records")])
