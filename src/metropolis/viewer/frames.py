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
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.spatial import cKDTree

from metropolis.scheduling.rules import block_radius

MAX_BLOCK_AGENTS = 5_000  # the who-blocks-whom test is waiting agents against those behind: skipped above this
MAX_BLOCK_PAIRS = 2_000  # pairs a frame carries (the page draws an arrow for each); the count says how many in all

Rows: TypeAlias = "pa.Table | pd.DataFrame"  # step rows: Arrow from the sources, a DataFrame where a test builds them


def arrow(rows: Rows) -> pa.Table:
    return rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)


def numbers(table: pa.Table, column: str, dtype: Any = np.int64, null: Any = 0) -> np.ndarray:
    """A column as a numpy array, nulls (and a column an old or imported trace lacks) as `null`. Straight from
    Arrow: a page's look converts a few columns of a few hundred rows, where a DataFrame's construction cost
    more than everything else the look does."""
    if column not in table.column_names or pa.types.is_null(table.schema.field(column).type):
        return np.full(len(table), null, dtype)
    values = table.column(column)
    if values.null_count:
        values = pc.fill_null(values, pa.scalar(null).cast(values.type))
    return values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


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
    def of(cls, rows: Rows, agents: int, before: tuple[int, int] = (0, 0)) -> Timeline:
        """`rows`: the steps of every agent from some step on (each agent's first row is where its rows start);
        `before`: the speculative steps and the undone runs of the steps left out."""
        table = arrow(rows)
        agent, steps = numbers(table, "agent"), numbers(table, "step")
        order = np.lexsort((steps, agent))
        agent, steps = agent[order], steps[order]
        counts = np.bincount(agent, minlength=agents)[:agents]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        first, has = np.zeros(agents, np.int64), counts > 0
        first[has] = steps[offsets[:-1][has]]
        end = numbers(table, "end", np.float64)[order]
        span = float(end.max()) + 1.0 if len(end) else 1.0
        unit = numbers(table, "unit", null=-1)[order]
        start = numbers(table, "start", np.float64)[order]
        speculative, undone = numbers(table, "speculative", bool)[order], numbers(table, "undone")[order]
        again = np.argsort(start[undone > 0], kind="stable")
        return cls(
            offsets,
            first,
            start,
            end,
            numbers(table, "x")[order],
            numbers(table, "y")[order],
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
    # The rules' own formula, per distinct gap (compiled, `block_radius` takes an int, not an array; few gaps)
    levels, which = np.unique(gap, return_inverse=True)
    radius = np.array([block_radius(int(g), R, V) for g in levels], dtype=np.float64)[which]
    hit = (gap > 0) & (d <= radius)
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


def _sizes(table: pa.Table, column: str) -> np.ndarray:
    """The length of each row's list in `column` (0 for null, or where the column is missing)."""
    if column not in table.column_names or pa.types.is_null(table.schema.field(column).type):
        return np.zeros(len(table), np.int64)
    return numbers(pa.table({"n": pc.list_value_length(table.column(column))}), "n")


def _lists(table: pa.Table, column: str, rows: np.ndarray) -> list[Any]:
    """`column`'s lists at `rows` as Python lists (None where missing)."""
    if column not in table.column_names:
        return [None] * len(rows)
    return table.column(column).take(pa.array(rows, pa.int64())).to_pylist()


def frames(
    window: Rows, first: int, last: int, agents: int, timeline: Timeline | None, info: dict[str, Any]
) -> dict[str, Any]:
    """Frames `first`..`last - 1`: positions and actions (indices into `actions`) per agent, who talks to whom,
    which agents ran the step ahead of their blockers (`spec`) and after undone runs (`undone`: agent -> runs),
    and the scheduler's picture when each frame became complete. Columns are turned into lists once, so a window
    of 1,000 agents takes milliseconds a frame."""
    table = arrow(window)
    n = len(table)
    order = np.lexsort((numbers(table, "agent"), numbers(table, "step")))
    w = table.take(pa.array(order, pa.int64())) if n else table
    bounds = np.searchsorted(numbers(w, "step"), np.arange(first, last + 1)) if n else np.zeros(0, int)
    coded = pc.dictionary_encode(w.column("action").cast(pa.string()).fill_null("None")).combine_chunks()
    agent = numbers(w, "agent").tolist()
    x = numbers(w, "x").tolist()
    y = numbers(w, "y").tolist()
    act = coded.indices.to_numpy(zero_copy_only=False).tolist()
    calls = numbers(w, "llm_calls").tolist()
    end = numbers(w, "end", np.float64)
    spoken = np.flatnonzero((_sizes(w, "partners") > 0) | (_sizes(w, "events") > 0))
    partners = dict(zip(spoken.tolist(), _lists(w, "partners", spoken), strict=True))
    events = dict(zip(spoken.tolist(), _lists(w, "events", spoken), strict=True))
    ahead = np.flatnonzero(numbers(w, "speculative", bool))
    undone = numbers(w, "undone")
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
        said = talk([agent[i] for i in talking], [partners[i] for i in talking], [events[i] for i in talking])
        frame: dict[str, Any] = {"step": k, "pos": pos, "action": action, "calls": made, **said}
        # This step's speculative rows: ran ahead of their blockers; runs undone before it committed.
        frame["spec"] = [agent[i] for i in ahead[(ahead >= lo) & (ahead < hi)].tolist()]
        frame["undone"] = {str(agent[i]): int(undone[i]) for i in redone[(redone >= lo) & (redone < hi)].tolist()}
        if timeline is not None:
            frame["sched"] = timeline.at(t, info["until"], info["perception_radius"], info["max_velocity"])
        out.append(frame)
    return {"first": first, "actions": coded.dictionary.to_pylist(), "frames": out}
