"""Frames for the page: where every agent stands after step k, and the scheduler's picture at the moment the
slowest agent finished step k (the instant frame k became complete).

The scheduler layer is derived from the trace's time spans: at that instant, each agent has committed the steps
that ended by then, runs the step that started by then, and waits otherwise. An agent waits on another that is
behind it and near enough to reach its perception radius (the blocking rule of `scheduling/rules.py`, with
straight-line distance), and agents that share a running unit form a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metropolis.scheduling.rules import block_radius

MAX_BLOCK_AGENTS = 2_000  # the who-blocks-whom test is all pairs: skipped above this many agents


@dataclass(slots=True)
class Timeline:
    """Every step's time span and end position, as flat arrays sorted by (agent, step)."""

    offsets: np.ndarray  # agent i's rows are offsets[i]:offsets[i + 1]
    start: np.ndarray
    end: np.ndarray
    x: np.ndarray
    y: np.ndarray
    unit: np.ndarray
    key: np.ndarray  # end + agent * span: sorted, so one searchsorted answers every agent at once
    span: float

    @classmethod
    def of(cls, frame: pd.DataFrame, agents: int) -> Timeline:
        frame = frame.sort_values(["agent", "step"], kind="stable")
        agent = frame["agent"].to_numpy(np.int64)
        counts = np.bincount(agent, minlength=agents)[:agents]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        end = frame["end"].to_numpy(np.float64, na_value=0.0)
        span = float(end.max()) + 1.0 if len(end) else 1.0
        unit = frame["unit"].to_numpy(np.float64, na_value=-1).astype(np.int64)
        return cls(
            offsets,
            frame["start"].to_numpy(np.float64, na_value=0.0),
            end,
            frame["x"].to_numpy(np.int64),
            frame["y"].to_numpy(np.int64),
            unit,
            end + agent * span,
            span,
        )

    def at(self, t: float, until: int, R: float, V: float) -> dict[str, Any]:
        """The scheduler's picture at time `t`."""
        n = len(self.offsets) - 1
        ids = np.arange(n)
        upto = min(t, self.span - 1.0)  # past the last end everything is done; keys of agent i stay below i+1's
        done = np.searchsorted(self.key, upto + ids * self.span, side="right") - self.offsets[:-1]
        have = self.offsets[1:] - self.offsets[:-1]
        last = np.clip(self.offsets[:-1] + done - 1, 0, max(len(self.x) - 1, 0))
        nxt = np.minimum(self.offsets[:-1] + done, max(len(self.x) - 1, 0))
        running = (done < have) & (self.start[nxt] <= t) if len(self.x) else np.zeros(n, bool)
        gvt = int(done.min()) if n else 0
        units: dict[int, list[int]] = {}
        for agent in np.flatnonzero(running):
            units.setdefault(int(self.unit[nxt[agent]]), []).append(int(agent))
        waiting = ~running & (done < until)
        return {
            "t": t,
            "steps": done.tolist(),
            "gvt": gvt,
            "running": running.astype(int).tolist(),
            "clusters": [m for u, m in sorted(units.items()) if u >= 0],
            "blocks": _blocks(done, waiting, self.x[last], self.y[last], R, V) if n <= MAX_BLOCK_AGENTS else [],
        }


def _blocks(
    steps: np.ndarray, waiting: np.ndarray, x: np.ndarray, y: np.ndarray, R: float, V: float
) -> list[list[int]]:
    """[blocker, blocked] pairs: `blocked` waits, `blocker` is `gap` steps behind it within the block radius."""
    gap = steps[:, None] - steps[None, :]  # gap[a, b] = how far a is ahead of b
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    blocked = waiting[:, None] & (gap > 0) & (d <= block_radius(gap, R, V))
    a, b = np.nonzero(blocked)
    return [[int(j), int(i)] for i, j in zip(a, b, strict=True)]


def frames(
    window: pd.DataFrame, first: int, last: int, agents: int, timeline: Timeline | None, info: dict[str, Any]
) -> dict[str, Any]:
    """Frames `first`..`last - 1`: positions and actions (indices into `actions`) per agent, and the scheduler's
    picture when each frame became complete."""
    actions: dict[str, int] = {}
    out = []
    by_step: dict[int, pd.DataFrame] = {}
    for k, g in window.groupby("step") if len(window) else ():
        by_step[int(str(k))] = g
    for k in range(first, last):
        rows = by_step.get(k)
        pos: list[list[int] | None] = [None] * agents
        act: list[int] = [-1] * agents
        calls = [0] * agents
        t = 0.0
        if rows is not None:
            for agent, x, y, action, end, n in zip(
                rows["agent"], rows["x"], rows["y"], rows["action"], rows["end"], rows["llm_calls"], strict=True
            ):
                pos[agent] = [int(x), int(y)]
                act[agent] = actions.setdefault(str(action), len(actions))
                calls[agent] = 0 if pd.isna(n) else int(n)
                t = max(t, 0.0 if pd.isna(end) else float(end))
        frame: dict[str, Any] = {"step": k, "pos": pos, "action": act, "calls": calls}
        if timeline is not None:
            frame["sched"] = timeline.at(t, info["until"], info["perception_radius"], info["max_velocity"])
        out.append(frame)
    return {"first": first, "actions": list(actions), "frames": out}
