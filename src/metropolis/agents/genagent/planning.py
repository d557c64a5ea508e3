"""Planning: a broad plan for the day, an hour-by-hour schedule, tasks of the hour, and where to do them.

Each step has an LLM call with a tolerant parser and a deterministic fallback built from the persona's own
description (its routine), so a model that answers nonsense still yields a sensible day.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import metropolis.agents.genagent.prompts as prompts
from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.parsing import (
    Asker,
    clean_activity,
    clean_sentence,
    fuzzy_choice,
    json_items,
    parse_text_list,
)
from metropolis.agents.genagent.persona import Persona
from metropolis.agents.genagent.validation import has_ing_verb

Check = Callable[[str], str]

_WORD = re.compile(r"[a-z]+")
_HOUR_LINE = re.compile(r"^\s*[-*]?\s*(\d{1,2})(?::\d{2})?\s*(am|pm)?\s*[-:.)]*\s*(.+)$", re.IGNORECASE)
_GENERIC = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "to",
        "and",
        "for",
        "at",
        "in",
        "on",
        "with",
        "his",
        "her",
        "their",
        "some",
        "up",
        "from",
        "go",
        "going",
    ]
)
SLEEPING = "sleeping"
WAKING = "waking up and getting ready for the day"
RELAXING = "relaxing at home"
# The routine's own at-home hours: no place to ask about (a small model sends people to the cafe to wake up).
AT_HOME = frozenset([SLEEPING, WAKING, RELAXING])


@dataclass(frozen=True, slots=True)
class Subtask:
    """One task of the hour: from `start` to `end` (simulated seconds of the day), at `area` (an address)."""

    task: str
    start: float
    end: float
    area: str


DAY = 86400.0  # seconds; subtask times are seconds of the day


def current_subtask(subtasks: Sequence[Subtask], now: float) -> Subtask | None:
    """The subtask that covers simulated time `now`, if any."""
    return next((t for t in subtasks if t.start <= now % DAY < t.end), None)


_CLAUSE_END = re.compile(r"[.,;]| and (?:is|lives|spends)\b| (?:who|that|which|how)\b")
_DANGLING = re.compile(r"(?:\s+(?:a|an|the|of|in|on|for|and|or|to|with|at|by|about|from|\d+))+$", re.I)
_NOT_WORK = ("living", "lives")


def work_sentence(persona: Persona) -> str:
    """What the persona does all day, as an activity: the first "-ing" clause of its description
    ("Latoya Williams is creating a series of photography ..." -> "creating a series of photography ...")."""
    for raw in (persona.currently, persona.daily_plan_req, persona.learned):
        text = raw.replace(persona.name, " ")
        for match in re.finditer(r"\b[a-z]+ing\b", text):
            if match.group() in _NOT_WORK or not has_ing_verb(match.group(), 1):
                continue
            clause = _CLAUSE_END.split(text[match.start() :], maxsplit=1)[0]
            cleaned = _DANGLING.sub("", clean_sentence(clause, 80))
            if cleaned:
                return cleaned
    return "working"


def fallback_schedule(persona: Persona, wake: int, sleep: int) -> dict[int, str]:
    """The default routine: morning at home, work, lunch, work, dinner, evening, sleep."""
    work = work_sentence(persona)
    out: dict[int, str] = {}
    for hour in range(wake, min(sleep, 24)):
        if hour == wake:
            out[hour] = WAKING
        elif hour == wake + 1:
            out[hour] = "having breakfast"
        elif hour == 12:
            out[hour] = "having lunch"
        elif hour == 18:
            out[hour] = "having dinner"
        elif hour > 18:
            out[hour] = RELAXING
        else:
            out[hour] = work
    return out


def fallback_plan(persona: Persona, wake: int, sleep: int) -> list[str]:
    sched = fallback_schedule(persona, wake, sleep)
    return [f"{activity} at {hour}:00" for hour, activity in sorted(sched.items()) if activity != sched.get(hour - 1)]


def parse_schedule(text: str, hours: list[int], check: Check = clean_activity) -> dict[int, str] | None:
    """hour -> activity from JSON items or "7:00 am - breakfast" lines; missing hours carry the previous one."""
    found: dict[int, str] = {}
    items = json_items(text, "schedule")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                _put_hour(found, item.get("hour"), item.get("activity"), check)
    if not found:
        for line in text.splitlines():
            match = _HOUR_LINE.match(line)
            if match:
                hour = int(match.group(1)) + (
                    12 if (match.group(2) or "").lower() == "pm" and int(match.group(1)) < 12 else 0
                )
                _put_hour(found, hour, match.group(3), check)
    found = {h: a for h, a in found.items() if h in hours}
    if not found:
        return None
    out: dict[int, str] = {}
    current = found.get(min(found), "")
    for hour in hours:
        current = found.get(hour, current)
        out[hour] = current
    return out


def _put_hour(found: dict[int, str], hour: Any, activity: Any, check: Check) -> None:
    if isinstance(hour, str):
        digits = re.match(r"\s*(\d{1,2})", hour)
        hour = (
            int(digits.group(1)) + (12 if "pm" in hour.lower() and int(digits.group(1)) < 12 else 0) if digits else None
        )
    if isinstance(hour, int | float) and not isinstance(hour, bool) and isinstance(activity, str):
        text = check(activity)
        if text:
            found.setdefault(int(hour), text)


def parse_subtasks(
    text: str, total: int, cfg: GenAgentConfig, check: Check = clean_activity
) -> list[tuple[str, int]] | None:
    """(task, minutes) pairs scaled to fill `total` minutes, each at least `min_subtask_minutes`."""
    items = json_items(text, "subtasks")
    pairs: list[tuple[str, float | None]] = []
    if isinstance(items, list):
        for item in items:
            task = item.get("task") if isinstance(item, dict) else item
            minutes = item.get("minutes") if isinstance(item, dict) else None
            if isinstance(task, str) and check(task):
                ok = isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes > 0
                pairs.append((check(task), float(minutes) if ok else None))  # type: ignore[arg-type]
    else:
        listed = parse_text_list(text, "subtasks", cfg.max_subtasks) or []
        pairs = [(check(t), None) for t in listed if check(t)]
    pairs = pairs[: min(cfg.max_subtasks, max(1, total // cfg.min_subtask_minutes))]
    if not pairs:
        return None
    return _scale_minutes(pairs, total, cfg.min_subtask_minutes)


def _scale_minutes(pairs: list[tuple[str, float | None]], total: int, floor: int) -> list[tuple[str, int]]:
    given = [m for _, m in pairs if m is not None]
    default = sum(given) / len(given) if given else total / len(pairs)
    raw = [m if m is not None else default for _, m in pairs]
    scale = total / sum(raw)
    minutes = [max(floor, round(m * scale)) for m in raw]
    minutes[-1] = max(0, total - sum(minutes[:-1]))
    while minutes[-1] < floor and len(minutes) > 1:
        minutes.pop()
        minutes[-1] = total - sum(minutes[:-1])
    return [(task, m) for (task, _), m in zip(pairs, minutes, strict=False)]


def keyword_area(task: str, areas: list[str], default: str) -> str:
    """The known area sharing most words with the task (fallback for the place choice)."""
    words = set(_WORD.findall(task.lower())) - _GENERIC
    best, best_score = default, 0
    for area in areas:
        score = len(words & set(_WORD.findall(area.lower().split(":", 1)[-1])))
        if score > best_score:
            best, best_score = area, score
    return best


async def plan_day(
    ask: Asker,
    persona: Persona,
    identity: str,
    cfg: GenAgentConfig,
    date: str,
    wake: int,
    sleep: int,
    memories: list[str],
) -> list[str]:
    """The broad plan for the day, from waking up at `wake`."""
    return await ask(
        "daily_plan",
        prompts.daily_plan(identity, date, wake, memories),
        lambda t: parse_text_list(t, "plan", cfg.max_daily_plan_items),
        fallback_plan(persona, wake, sleep),
        max_tokens=cfg.tokens_plan,
        schema=prompts.schema_plan(cfg.max_daily_plan_items),
    )


async def plan_schedule(
    ask: Asker,
    persona: Persona,
    identity: str,
    cfg: GenAgentConfig,
    plan: list[str],
    hour: int,
    wake: int,
    sleep: int,
    check: Check = clean_activity,
) -> dict[int, str]:
    """What the persona does in each of the next `schedule_horizon_hours` waking hours from `hour`.

    A rolling horizon rather than the whole day at once: a small model writes a short list well and fast.
    """
    hours = list(range(hour, min(hour + cfg.schedule_horizon_hours, sleep, 24)))
    if not hours:
        return {}
    routine = fallback_schedule(persona, wake, sleep)
    awake = awake_check(check)
    return await ask(
        "hourly_schedule",
        prompts.hourly_schedule(identity, plan, hours),
        lambda t: parse_schedule(t, hours, awake),
        {h: routine[h] for h in hours if h in routine},
        max_tokens=cfg.tokens_schedule,
        schema=prompts.schema_schedule(len(hours)),
    )


SLEEPY = re.compile(r"\b(sleep\w*|asleep|nap\w*|going to bed|in bed)\b", re.IGNORECASE)


def awake_check(check: Check) -> Check:
    """Schedules and tasks are only asked for waking hours (sleep comes from the persona's own hours), so an
    answer that puts the persona to sleep then is the model's confusion: rejected, so retry or the routine."""

    def checked(text: str) -> str:
        return "" if SLEEPY.search(text) else check(text)

    return checked


async def plan_hour(
    ask: Asker,
    identity: str,
    cfg: GenAgentConfig,
    activity: str,
    hour: int,
    minutes: int,
    areas: list[str],
    home: str,
    here: str,
    memories: list[str],
    check: Check = clean_activity,
    timed_hook: Callable[[list[Subtask]], None] | None = None,
) -> list[Subtask]:
    """The hour's subtasks, all at the area chosen for the hour's activity. `timed_hook` gets them, place not
    chosen yet (area ""), before the place is asked for: the agent's plan hint on that call needs the times."""
    timed = await decompose_hour(ask, identity, cfg, activity, hour, minutes, memories, check)
    if timed_hook is not None:
        timed_hook(timed)
    area = await hour_area(ask, identity, cfg, activity, areas, home, here)
    return [dataclasses.replace(t, area=area) for t in timed]


async def decompose_hour(
    ask: Asker,
    identity: str,
    cfg: GenAgentConfig,
    activity: str,
    hour: int,
    minutes: int,
    memories: list[str],
    check: Check = clean_activity,
) -> list[Subtask]:
    """The last `minutes` of `hour` as timed subtasks, their place not chosen yet (area "")."""
    pairs = await ask(
        "task_decomp",
        prompts.decompose(identity, activity, hour, minutes, memories),
        lambda t: parse_subtasks(t, minutes, cfg, awake_check(check)),
        [(activity, minutes)],
        max_tokens=cfg.tokens_decompose,
        schema=prompts.schema_subtasks(cfg.max_subtasks),
    )
    out, start = [], hour * 3600.0 + (60 - minutes) * 60.0
    for task, m in pairs:
        out.append(Subtask(task, start, start + m * 60.0, ""))
        start += m * 60.0
    return out


async def hour_area(
    ask: Asker, identity: str, cfg: GenAgentConfig, activity: str, areas: list[str], home: str, here: str
) -> str:
    """Where the hour's activity happens: home for the routine's at-home hours, else the model's choice."""
    if activity in AT_HOME and home in areas:
        return home
    return await choose_area(ask, identity, cfg, activity, areas, home, here)


def area_options(task: str, areas: list[str], home: str, here: str, limit: int) -> list[str]:
    """At most `limit` areas to offer, likeliest first: the best keyword match, home, where the agent is, the rest.

    A small model picks among few options far better than among all the town's places, and leans on the first.
    """
    first = [keyword_area(task, areas, home), home, here]
    ordered = [a for a in first if a in areas] + [a for a in areas if a not in first]
    return list(dict.fromkeys(ordered))[:limit]


async def choose_area(
    ask: Asker, identity: str, cfg: GenAgentConfig, task: str, areas: list[str], home: str, here: str
) -> str:
    areas = area_options(task, areas, home, here, cfg.max_place_options)
    if not areas:
        return here
    shown = [a.split(":", 1)[-1] for a in areas]
    fallback = areas[0]
    picked = await ask(
        "action_area",
        prompts.choose(identity, f"Where would this person go for: {task}?", shown),
        lambda t: fuzzy_choice(t, shown),
        shown[0],
        max_tokens=cfg.tokens_choice,
        schema=prompts.choice_schema(shown),
    )
    return areas[shown.index(picked)] if picked in shown else fallback


async def choose_object(ask: Asker, identity: str, cfg: GenAgentConfig, task: str, objects: list[str]) -> str | None:
    if len(objects) <= 1:
        return objects[0] if objects else None
    fallback = keyword_area(task, objects, objects[0])
    return await ask(
        "action_object",
        prompts.choose(identity, f"Which object would this person use for: {task}?", objects),
        lambda t: fuzzy_choice(t, objects),
        fallback,
        max_tokens=cfg.tokens_choice,
        schema=prompts.choice_schema(objects),
    )
