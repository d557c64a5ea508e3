"""What the agent's own plan says about its next LLM call, published (`ctx.plan`) before each of its requests.

The agent calls the LLM when it picks its next subtask (the end of the current one: the place of the new one
may need choosing), at the top of each waking hour (the hour's tasks), and at wake-up (the day's plan). Between
those it only walks and works, so after the call that settles the current subtask its next *planned* call is
the subtask's end, or its wake-up when it is asleep by then. A walk adds nothing: the agent makes no call on
arrival, and a walk longer than its subtask is cut short when the next subtask is picked. Meetings and
reflections are not planned: the spatial bound covers the first, nothing the second.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from metropolis.agents.genagent.planning import DAY, Subtask, current_subtask
from metropolis.engine.records import Plan


def next_call_hint(
    step: int,
    now: float,
    seconds_per_step: float,
    subtasks: Sequence[Subtask],
    awake: Callable[[float], bool],
    wake_hour: float,
) -> Plan | None:
    """The plan at `step` (simulated time `now`): None when no subtask of the plan covers `now` (the plan
    is still being made) or the agent never wakes."""
    day_start = now - now % DAY
    current = current_subtask(subtasks, now)
    if current is None:
        return None
    end = day_start + current.end
    if awake(end):
        return Plan(step, step + _steps_until(end - now, seconds_per_step))
    wake = end - end % DAY + wake_hour * 3600.0
    if wake < end:
        wake += DAY
    if not awake(wake):
        return None
    return Plan.asleep(step, step + _steps_until(wake - now, seconds_per_step))


def _steps_until(seconds: float, seconds_per_step: float) -> int:
    """The first step at or after `seconds` from now: when the agent's clock check sees the moment."""
    return math.ceil(seconds / seconds_per_step)
