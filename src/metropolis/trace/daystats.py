"""Statistics of agents' days, from the agent-steps of a trace (a Generative Agents movement log, or a run).

An action of the form `what @ world:sector:arena:object` places the agent; during a conversation the action
reads `... @ <persona> Name` and the agent is taken to be where it last was. An agent sleeps while its action
starts with `sleeping`. Hours are counted from midnight of the day the trace starts, so a bedtime after
midnight reads 24.x.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metropolis.trace.distribution import Distribution
from metropolis.trace.store import Trace

SLEEP = re.compile(r"^\s*sleeping\b", re.IGNORECASE)
UNPLACED = "(unknown)"


@dataclass(frozen=True, slots=True)
class AgentDay:
    name: str
    moving_fraction: float  # of steps, a step counting when the position differs from the step before
    conversations: int
    conversation_steps: int
    sleep_hours: float  # per day
    wake_hour: float | None  # end of the sleep the trace starts in
    bed_hour: float | None  # start of the last sleep that begins after waking


@dataclass(frozen=True, slots=True)
class DayStats:
    days: float
    seconds_per_step: float
    agents: list[AgentDay]
    conversation_steps: Distribution
    conversation_utterances: Distribution
    place_hours: pd.DataFrame  # hour of day x sector: share of the agents' time in that hour

    @property
    def moving_fraction(self) -> float:
        return float(np.mean([a.moving_fraction for a in self.agents]))

    @property
    def conversations(self) -> int:
        return self.conversation_steps.count

    @property
    def conversations_per_agent_day(self) -> float:
        return float(np.mean([a.conversations for a in self.agents])) / self.days

    def lines(self) -> list[str]:
        hours = self.seconds_per_step / 3600
        out = [
            f"Agent days: {len(self.agents)} agents over {self.days:.2f} days ({self.seconds_per_step:g} s per step)",
            f"  moving {self.moving_fraction:.1%} of steps; {self.conversations} conversations, "
            f"{self.conversations_per_agent_day:.2f} per agent per day",
            f"  conversation length  {self.conversation_steps.describe(1, ' steps')}",
            f"  utterances           {self.conversation_utterances.describe(1)}",
            f"  {'agent':<22} {'moving':>7} {'convs':>5} {'talk h':>6} {'sleep h':>7} {'wake':>6} {'bed':>6}",
        ]
        for a in self.agents:
            out.append(
                f"  {a.name:<22} {a.moving_fraction:>7.1%} {a.conversations:>5} "
                f"{a.conversation_steps * hours:>6.2f} "
                f"{a.sleep_hours:>7.2f} {_clock(a.wake_hour):>6} {_clock(a.bed_hour):>6}"
            )
        top = self.place_hours.sum().sort_values(ascending=False).index[:6]
        out.append("  share of time per hour of day, top sectors: " + ", ".join(top))
        for hour, row in self.place_hours[top].iterrows():
            out.append(f"    {hour:02d}h " + " ".join(f"{v:>5.0%}" for v in row))
        return out


def _clock(hour: float | None) -> str:
    if hour is None:
        return "-"
    minutes = round(hour * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def sectors(actions: pd.Series) -> pd.Series:
    """The sector of each `what @ world:sector:...` action; None where the action names no place."""
    address = actions.astype(str).str.partition(" @ ")[2]
    parts = address.str.split(":")
    placed = ~address.str.startswith("<persona>") & (parts.map(len) >= 2)
    return parts.str[1].where(placed, None)


def _sleep_times(asleep: np.ndarray, hour_of: np.ndarray) -> tuple[float | None, float | None]:
    """Wake: end of the sleep at the start; bed: start of the last sleep that begins after waking."""
    if not asleep.any():
        return None, None
    starts = np.flatnonzero(asleep & ~np.concatenate([[False], asleep[:-1]]))
    ends = np.flatnonzero(asleep & ~np.concatenate([asleep[1:], [False]]))
    wake = None
    if asleep[0] and ends[0] + 1 < len(asleep):
        wake = float(hour_of[ends[0] + 1])
    later = starts[starts > (ends[0] if asleep[0] else -1)]
    return wake, (float(hour_of[later[-1]]) if len(later) else None)


def _agent_day(trace: Trace, agent: int, hour_of: np.ndarray, days: float) -> AgentDay:
    steps = trace.steps_of(agent)
    pos = steps[["x", "y"]].to_numpy()
    moved = (np.diff(pos, axis=0) != 0).any(axis=1)
    asleep = steps["action"].astype(str).str.match(SLEEP).to_numpy()
    talks = trace.conversations_of(agent)
    wake, bed = _sleep_times(asleep, hour_of[steps["step"].to_numpy()])
    return AgentDay(
        name=trace.meta.agent_names[agent],
        moving_fraction=float(moved.mean()) if len(moved) else 0.0,
        conversations=len(talks),
        conversation_steps=int((talks["end"] - talks["start"] + 1).sum()),
        sleep_hours=float(asleep.sum()) * trace.meta.seconds_per_step / 3600 / days,
        wake_hour=wake,
        bed_hour=bed,
    )


def place_hours(trace: Trace, hour_of: np.ndarray) -> pd.DataFrame:
    """Share of the agents' time in each sector, per hour of day (rows 0..23 that the trace covers)."""
    steps = trace.steps.sort_values(["agent", "step"], kind="stable")
    sector = sectors(steps["action"]).astype(object).groupby(steps["agent"].to_numpy()).ffill().fillna(UNPLACED)
    hour = (hour_of[steps["step"].to_numpy()] % 24).astype(int)
    counts = pd.crosstab(hour, sector.to_numpy())
    return counts.div(counts.sum(axis=1), axis=0).rename_axis(index="hour", columns="sector")


def day_stats(trace: Trace) -> DayStats:
    if trace.steps.empty:
        raise ValueError("this trace has no agent-steps to summarise")
    meta = trace.meta
    n = trace.num_steps
    hour_of = (meta.start_seconds + np.arange(n) * meta.seconds_per_step) / 3600
    days = n * meta.seconds_per_step / 86400
    conv = trace.conversations
    return DayStats(
        days=days,
        seconds_per_step=meta.seconds_per_step,
        agents=[_agent_day(trace, a, hour_of, days) for a in range(len(meta.agent_names))],
        conversation_steps=Distribution.of((conv["end"] - conv["start"] + 1).to_numpy(dtype=float)),
        conversation_utterances=Distribution.of(conv["utterances"].map(len).to_numpy(dtype=float)),
        place_hours=place_hours(trace, hour_of),
    )
