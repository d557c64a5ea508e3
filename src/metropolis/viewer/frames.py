"""Frames for the page: where every agent stands after step k, and the scheduler's picture at the moment the
slowest agent finished step k (the instant frame k became complete).

The scheduler layer is derived from the trace's time spans: at that instant, each agent has committed the steps
that ended by then, runs the step that started by then, and waits otherwise. An agent waits on another that is
behind it and near enough to reach its perception radius (the blocking rule of `scheduling/rules.py`, with
straight-line distance), and agents that share a running unit form a cluster. Under the `speculative` policy it
also says which agents run a step ahead of its blockers (`ahead`), which run a step again after runs of it were
undone (`rerun`), and how many speculative steps had committed and how many runs were undone by then (`counts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from metropolis.scheduling.rules import block_radius

MAX_BLOCK_AGENTS = 5_000  # the who-blocks-whom test is waiting agents against those behind: skipped above this
MAX_BLOCK_PAIRS = 2_000  # pairs a frame carries (the page draws an arrow for each); the count says how many in all


@dataclass(slots=True)
class Timeline:
    """Every step's time span and end position, as flat arrays sorted by (agent, step). A live view's timeline
    holds only the steps from the first frame it draws on (`Timeline.of(..., before=...)`): every earlier step
    had ended when that frame became complete, so they change no picture but by their counts, which `before`
    carries; a look at a long run then costs what its newest steps cost, not its whole history."""

    offsets: np.ndarray  # agent i's rows are offsets[i]:offsets[i + 1]
    first: np.ndarray  # agent i's first row is its step first[i] (0 for a whole run)
    start: np.ndarray
    end: np.ndarray
    x: np.ndarray
    y: np.ndarray
    unit: np.ndarray
    key: np.ndarray  # end + agent * span: sorted, so one searchsorted answers every agent at once
    span: float
    speculative: np.ndarray  # the step ran ahead of its blockers
    undone: np.ndarray  # runs of the step undone before it committed
    spec_ends: np.ndarray  # sorted ends of the speculative steps: how many had ended by t
    undo_starts: np.ndarray  # sorted starts of the steps run again, and the undone runs before each, summed
    undo_sums: np.ndarray
    spec_before: int = 0  # steps left out (before `first`) that ran ahead of their blockers
    undo_before: int = 0  # and the runs undone before those steps committed

    @classmethod
    def of(cls, frame: pd.DataFrame, agents: int, before: tuple[int, int] = (0, 0)) -> Timeline:
        """`frame`: rows of every agent from some step on (each agent's first row is where its rows start);
        `before`: the speculative steps and the undone runs of the steps left out."""
        frame = frame.sort_values(["agent", "step"], kind="stable")
        agent = frame["agent"].to_numpy(np.int64)
        counts = np.bincount(agent, minlength=agents)[:agents]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        steps = frame["step"].to_numpy(np.int64)
        first, has = np.zeros(agents, np.int64), counts > 0
        first[has] = steps[offsets[:-1][has]]
        end = frame["end"].to_numpy(np.float64, na_value=0.0)
        span = float(end.max()) + 1.0 if len(end) else 1.0
        unit = frame["unit"].to_numpy(np.float64, na_value=-1).astype(np.int64)
        start = frame["start"].to_numpy(np.float64, na_value=0.0)
        speculative, undone = bool_column(frame, "speculative"), count_column(frame, "undone")
        again = np.argsort(start[undone > 0], kind="stable")
        return cls(
            offsets,
            first,
            start,
            end,
            frame["x"].to_numpy(np.int64),
            frame["y"].to_numpy(np.int64),
            unit,
            end + agent * span,
            span,
            speculative,
            undone,
            np.sort(end[speculative]),
            start[undone > 0][again],
            np.cumsum(undone[undone > 0][again]),
            before[0],
            before[1],
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
        steps = self.first + done
        gvt = int(steps.min()) if n else 0
        units: dict[int, list[int]] = {}
        for agent in np.flatnonzero(running):
            units.setdefault(int(self.unit[nxt[agent]]), []).append(int(agent))
        waiting = ~running & (steps < until)
        blocks, count = _blocks(steps, waiting, self.x[last], self.y[last], R, V) if n <= MAX_BLOCK_AGENTS else ([], 0)
        redone = int(np.searchsorted(self.undo_starts, t, side="right"))
        return {
            "t": t,
            "steps": steps.tolist(),
            "gvt": gvt,
            "running": running.astype(int).tolist(),
            "clusters": [m for u, m in sorted(units.items()) if u >= 0],
            "blocks": blocks,
            "block_pairs": count,
            "ahead": np.flatnonzero(running & self.speculative[nxt]).tolist() if len(self.x) else [],
            "rerun": np.flatnonzero(running & (self.undone[nxt] > 0)).tolist() if len(self.x) else [],
            "counts": {
                "speculative": self.spec_before + int(np.searchsorted(self.spec_ends, t, side="right")),
                "undone": self.undo_before + (int(self.undo_sums[redone - 1]) if redone else 0),
            },
        }


def bool_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A nullable boolean column (null in old traces and imported ones) as booleans, null as False."""
    if column not in frame.columns:
        return np.zeros(len(frame), bool)
    return frame[column].astype("boolean").fillna(False).to_numpy(bool)


def count_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A nullable count column as integers, null as 0."""
    if column not in frame.columns:
        return np.zeros(len(frame), np.int64)
    return frame[column].to_numpy(np.float64, na_value=0.0).astype(np.int64)


def _blocks(
    steps: np.ndarray, waiting: np.ndarray, x: np.ndarray, y: np.ndarray, R: float, V: float
) -> tuple[list[list[int]], int]:
    """[blocker, blocked] pairs: `blocked` waits, `blocker` is `gap` steps behind it within the block radius; at
    most MAX_BLOCK_PAIRS of them, and how many there are. Only a waiting agent ahead of GVT can be blocked, only
    by an agent within the radius its lead over GVT allows: a k-d tree finds those, so 1,000 agents take a few
    milliseconds instead of a million pair tests."""
    ahead = np.flatnonzero(waiting & (steps > steps.min())) if len(steps) else np.zeros(0, np.int64)
    if not len(ahead):
        return [], 0
    behind = np.flatnonzero(steps < steps[ahead].max())
    widest = block_radius(int(steps[ahead].max() - steps.min()), R, V)
    xy = np.column_stack([x, y]).astype(np.float64)
    close = cKDTree(xy[ahead]).sparse_distance_matrix(cKDTree(xy[behind]), widest, output_type="ndarray")
    i, j, d = ahead[close["i"]], behind[close["j"]], close["v"]
    gap = steps[i] - steps[j]
    hit = (gap > 0) & (d <= block_radius(gap, R, V))
    order = np.lexsort((j[hit], i[hit]))
    blocked, blocker = i[hit][order], j[hit][order]
    shown = zip(blocked[:MAX_BLOCK_PAIRS], blocker[:MAX_BLOCK_PAIRS], strict=True)
    return [[int(b), int(a)] for a, b in shown], len(order)


def talk(agents: list[int], partners: list[Any], events: list[Any]) -> dict[str, Any]:
    """Who talks to whom at one step: `talks`, the [a, b] pairs (a < b) where a step of one wrote into the other
    (`ctx.partner`: a conversation), and `said`, what each agent's step recorded of it: its events while it has
    partners (a walker's "A greets B"), and its lines ("Speaker: line" events) at any step."""
    pairs: set[tuple[int, int]] = set()
    said: dict[str, list[str]] = {}
    for agent, others, lines in zip(agents, partners, events, strict=True):
        mates = [int(o) for o in (() if others is None else others) if int(o) != agent]
        for other in mates:
            pairs.add((min(agent, other), max(agent, other)))
        spoken = [str(e) for e in (() if lines is None else lines) if mates or ":" in str(e)]
        if spoken:
            said[str(agent)] = spoken
    return {"talks": [list(p) for p in sorted(pairs)], "said": said}


def _sizes(column: pd.Series | None, rows: int) -> np.ndarray:
    if column is None:
        return np.zeros(rows, np.int64)
    return column.map(lambda v: 0 if v is None else len(v)).to_numpy(np.int64)


def frames(
    window: pd.DataFrame, first: int, last: int, agents: int, timeline: Timeline | None, info: dict[str, Any]
) -> dict[str, Any]:
    """Frames `first`..`last - 1`: positions and actions (indices into `actions`) per agent, who talks to whom,
    which agents ran the step ahead of their blockers (`spec`) and after undone runs (`undone`: agent -> runs),
    and the scheduler's picture when each frame became complete. Columns are turned into lists once, so a window
    of 1,000 agents takes milliseconds a frame."""
    w = window.sort_values(["step", "agent"], kind="stable") if len(window) else window
    n = len(w)
    bounds = np.searchsorted(w["step"].to_numpy(np.int64), np.arange(first, last + 1)) if n else np.zeros(0, int)
    codes, uniques = pd.factorize(w["action"].astype(str)) if n else (np.zeros(0, np.int64), pd.Index([]))
    agent = w["agent"].to_numpy(np.int64).tolist() if n else []
    x = w["x"].to_numpy(np.int64).tolist() if n else []
    y = w["y"].to_numpy(np.int64).tolist() if n else []
    act = codes.tolist()
    calls = w["llm_calls"].to_numpy(np.float64, na_value=0.0).astype(np.int64).tolist() if n else []
    end = w["end"].to_numpy(np.float64, na_value=0.0) if n else np.zeros(0)
    partners = w["partners"] if n and "partners" in w else None
    events = w["events"] if n and "events" in w else None
    spoken = np.flatnonzero((_sizes(partners, n) > 0) | (_sizes(events, n) > 0))
    ahead = np.flatnonzero(bool_column(w, "speculative")) if n else np.zeros(0, np.int64)
    undone = count_column(w, "undone") if n else np.zeros(0, np.int64)
    redone = np.flatnonzero(undone > 0)
    out = []
    for k in range(first, last):
        lo, hi = (int(bounds[k - first]), int(bounds[k - first + 1])) if n else (0, 0)
        pos: list[list[int] | None] = [None] * agents
        action = [-1] * agents
        made = [0] * agents
        for i in range(lo, hi):
            a = agent[i]
            pos[a] = [x[i], y[i]]
            action[a] = act[i]
            made[a] = calls[i]
        t = float(end[lo:hi].max()) if hi > lo else 0.0
        talking = spoken[(spoken >= lo) & (spoken < hi)].tolist()
        said = talk(
            [agent[i] for i in talking],
            [None if partners is None else partners.iloc[i] for i in talking],
            [None if events is None else events.iloc[i] for i in talking],
        )
        frame: dict[str, Any] = {"step": k, "pos": pos, "action": action, "calls": made, **said}
        # This step's speculative rows: ran ahead of their blockers; runs undone before it committed.
        frame["spec"] = [agent[i] for i in ahead[(ahead >= lo) & (ahead < hi)].tolist()]
        frame["undone"] = {str(agent[i]): int(undone[i]) for i in redone[(redone >= lo) & (redone < hi)].tolist()}
        if timeline is not None:
            frame["sched"] = timeline.at(t, info["until"], info["perception_radius"], info["max_velocity"])
        out.append(frame)
    return {"first": first, "actions": [str(a) for a in uniques], "frames": out}
