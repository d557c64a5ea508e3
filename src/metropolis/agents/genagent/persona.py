"""What the agent needs from a persona (the Smallville loader's `Persona`) and the facts read off it."""

from __future__ import annotations

import re
from typing import Any, Protocol

from metropolis.world.spatial import Pos
from metropolis.world.world import World

_HOUR = re.compile(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", re.IGNORECASE)


class PersonaLike(Protocol):
    name: str
    spawn: Pos
    scratch: dict[str, Any]
    spatial_memory: dict[str, Any]
    whispers: list[str]


class TownLike(Protocol):
    world: World
    personas: list[Any]


def _hour_after(text: str, marker: str) -> int | None:
    """The hour named right after `marker` ("awakes up around 6am" -> 6, "midnight" -> 24)."""
    at = text.lower().find(marker)
    if at < 0:
        return None
    rest = text[at + len(marker) : at + len(marker) + 30]
    if "midnight" in rest.lower():
        return 24
    match = _HOUR.search(rest)
    if match is None:
        return None
    hour = int(match.group(1))
    suffix = (match.group(3) or "").lower()
    if suffix == "pm" and hour < 12:
        hour += 12
    if suffix == "am" and hour == 12:
        hour = 0
    return hour if 0 <= hour <= 24 else None


def wake_hour(persona: PersonaLike, default: int) -> int:
    return _hour_after(str(persona.scratch.get("lifestyle", "")), "awake") or default


def sleep_hour(persona: PersonaLike, default: int) -> int:
    hour = _hour_after(str(persona.scratch.get("lifestyle", "")), "bed")
    return default if hour is None or hour < 12 else hour


def identity(persona: PersonaLike) -> str:
    """The short identity paragraph every prompt starts with (kept small: the model is small)."""
    s = persona.scratch
    parts = [
        f"Name: {persona.name} (age {s.get('age', '?')})",
        f"Traits: {s.get('innate', '')}",
        str(s.get("learned", "")),
        str(s.get("currently", "")),
        str(s.get("lifestyle", "")),
    ]
    return "\n".join(p for p in parts if p.strip())


def known_areas(persona: PersonaLike) -> dict[str, list[str]]:
    """`world:sector:arena` -> its objects, for every place in the persona's spatial memory, sorted."""
    out: dict[str, list[str]] = {}
    for world_name in sorted(persona.spatial_memory):
        sectors = persona.spatial_memory[world_name] or {}
        for sector in sorted(sectors):
            arenas = sectors[sector] or {}
            for arena in sorted(arenas):
                out[f"{world_name}:{sector}:{arena}"] = sorted(str(o) for o in arenas[arena] or [])
    return out


def home_area(persona: PersonaLike, areas: dict[str, list[str]]) -> str | None:
    """The persona's living area, if it is one of the places it knows."""
    living = str(persona.scratch.get("living_area") or "")
    if living in areas:
        return living
    matches = [a for a in areas if a.startswith(living)] if living else []
    return matches[0] if matches else None
