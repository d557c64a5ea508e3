"""A resident's day as Generative Agents plans it: sleep, a morning at home, work, lunch, leisure, dinner,
an evening at home, each at a place the persona knows (its `scratch.json` and `spatial_memory.json`).

Hours come from the persona's own `lifestyle` ("goes to bed around 11pm, awakes up around 7am, eats dinner around
5pm"); the workplace is the known sector its `learned` / `currently` text names (Hobbs Cafe, Oak Hill College,
the pharmacy...), else its home. Each activity is a span of steps at a set of candidate tiles of its place.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from metropolis.world.smallville import Persona, Town
from metropolis.world.spatial import Pos

STEPS_PER_HOUR = 360
PLACE_TILES = 12  # a place's tiles agents walk to: few targets, so the walking fields stay cached
TILES_PER_PLACE = 4  # of those, the ones one agent uses
LUNCH_PLACES = (("Hobbs Cafe", 0.5), ("The Rose and Crown Pub", 0.15))  # else lunch at home
LEISURE_PLACES = (
    "Johnson Park",
    "The Willows Market and Pharmacy",
    "Harvey Oak Supply Store",
    "The Rose and Crown Pub",
)
DINNER_OUT = ("The Rose and Crown Pub", 0.25)
VISIT_NEIGHBOUR = 0.35  # `large` mode: share of lunches and leisure spent in a neighbouring town
_HOUR = re.compile(r"(\d{1,2})\s*(am|pm)|(midnight|noon)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Activity:
    start: int  # step of the day
    end: int
    label: str
    place: str  # sector name
    town: int
    tiles: tuple[Pos, ...]  # base-map tiles; the first is where the activity begins

    @property
    def asleep(self) -> bool:
        return self.label == "sleeping"


def parse_hours(persona: Persona) -> tuple[float, float, float]:
    """(wake, bed, dinner) hours of day from the lifestyle text; bed after midnight reads 24+."""
    text = persona.lifestyle.lower()

    def after(keyword: str, default: float) -> float:
        i = text.find(keyword)
        if i < 0:
            return default
        m = _HOUR.search(text, i)
        if m is None:
            return default
        if m.group(3):
            return 24.0 if m.group(3).lower() == "midnight" else 12.0
        h = int(m.group(1)) % 12
        return float(h + 12 if m.group(2).lower() == "pm" else h)

    wake = after("awake", 7.0)
    bed = after("bed", 23.0)
    if bed < 12:
        bed += 24
    dinner = after("dinner", 18.0)
    return wake, bed, dinner


def workplace(persona: Persona, town: Town) -> str:
    """The known public sector the persona's occupation text names, else the persona's home sector."""
    home = persona.living_area.split(":")[1]
    known = list(persona.spatial_memory.get(next(iter(persona.spatial_memory), ""), {}))
    text = " ".join((persona.learned, persona.currently, persona.innate)).lower()
    for sector in known:
        if sector != home and "'s " not in sector and sector.lower() in text:
            return sector
    if "college" in text and "Oak Hill College" in known:
        return "Oak Hill College"
    return home


def plan_day(
    persona: Persona,
    town: Town,
    home_town: int,
    neighbours: list[int],
    rng: random.Random,
    tiles_of: Callable[[str], list[Pos]] | None = None,
) -> list[Activity]:
    """The persona's activities from midnight to midnight, contiguous, with jittered hours; `tiles_of` looks
    places up (pass a cached one when planning many days)."""
    wake, bed, dinner = parse_hours(persona)

    def jitter(hour: float) -> float:
        return hour + rng.uniform(-0.25, 0.25)

    home = persona.living_area.split(":")[1]
    work = workplace(persona, town)
    wake, bed, dinner = jitter(wake), min(jitter(bed), 27.5), jitter(dinner)
    lunch = max(jitter(12.0), wake + 1.5)
    plan: list[tuple[float, str, str, int]] = [(0.0, "sleeping", home, home_town), (wake, "waking up", home, home_town)]
    plan.append((wake + 1.0, "working", work, home_town))
    if lunch + 1.0 < dinner:
        plan.append((lunch, "having lunch", *_outing(_pick(LUNCH_PLACES, rng, home), home_town, neighbours, rng)))
        plan.append((lunch + 1.0, "working", work, home_town))
    leisure = max(17.0, lunch + 2.0)
    if leisure + 0.5 < dinner:
        plan.append((leisure, "leisure", *_outing(rng.choice(LEISURE_PLACES), home_town, neighbours, rng)))
    out = rng.random() < DINNER_OUT[1]
    plan.append((dinner, "having dinner", DINNER_OUT[0] if out else home, home_town))
    plan.append((dinner + 1.0, "relaxing", home, home_town))
    plan.append((bed, "sleeping", home, home_town))
    return _activities(plan, persona, tiles_of or town.tiles_of, rng)


def _pick(options: tuple[tuple[str, float], ...], rng: random.Random, default: str) -> str:
    r = rng.random()
    for place, p in options:
        if r < p:
            return place
        r -= p
    return default


def _outing(place: str, home_town: int, neighbours: list[int], rng: random.Random) -> tuple[str, int]:
    if neighbours and rng.random() < VISIT_NEIGHBOUR:
        return place, rng.choice(neighbours)
    return place, home_town


def _activities(
    plan: list[tuple[float, str, str, int]], persona: Persona, tiles_of: Callable[[str], list[Pos]], rng: random.Random
) -> list[Activity]:
    plan.sort(key=lambda p: p[0])
    day = 24 * STEPS_PER_HOUR
    bed_tile = tiles_of(persona.living_area)
    out: list[Activity] = []
    for k, (hour, label, place, where) in enumerate(plan):
        start = min(day, max(0, round(hour * STEPS_PER_HOUR)))
        end = day if k + 1 == len(plan) else min(day, round(plan[k + 1][0] * STEPS_PER_HOUR))
        if end <= start:
            continue
        if label == "sleeping":
            tiles: tuple[Pos, ...] = (bed_tile[len(bed_tile) // 2],)
        else:
            candidates = spots(place, tiles_of)
            tiles = tuple(rng.sample(candidates, min(TILES_PER_PLACE, len(candidates))))
        out.append(Activity(start, end, label, place, where, tiles))
    return out


def spots(place: str, tiles_of: Callable[[str], list[Pos]]) -> list[Pos]:
    """The `PLACE_TILES` tiles of a place that agents walk to, the same for every agent and run."""
    tiles = tiles_of(place)
    return random.Random(place).sample(tiles, min(PLACE_TILES, len(tiles)))
