"""Facts the agent reads off its persona: wake and sleep hours, identity, the places it knows, its home."""

from __future__ import annotations

import re

from metropolis.world.smallville import Persona

_HOUR = re.compile(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", re.IGNORECASE)


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


def wake_hour(persona: Persona, default: int) -> int:
    return _hour_after(persona.lifestyle, "awake") or default


def sleep_hour(persona: Persona, default: int) -> int:
    hour = _hour_after(persona.lifestyle, "bed")
    return default if hour is None or hour < 12 else hour


def identity(persona: Persona) -> str:
    """The short identity paragraph every prompt starts with (kept small: the model is small)."""
    parts = [
        f"Name: {persona.name} (age {persona.age if persona.age is not None else '?'})",
        f"Traits: {persona.innate}",
        persona.learned,
        persona.currently,
        persona.lifestyle,
    ]
    return "\n".join(p for p in parts if p.strip())


def known_areas(persona: Persona) -> dict[str, list[str]]:
    """`world:sector:arena` -> its objects, for every place in the persona's spatial memory, sorted."""
    out: dict[str, list[str]] = {}
    for world_name in sorted(persona.spatial_memory):
        sectors = persona.spatial_memory[world_name] or {}
        for sector in sorted(sectors):
            arenas = sectors[sector] or {}
            for arena in sorted(arenas):
                out[f"{world_name}:{sector}:{arena}"] = sorted(str(o) for o in arenas[arena] or [])
    return out


def home_area(persona: Persona, areas: dict[str, list[str]]) -> str | None:
    """The persona's living area, if it is one of the places it knows."""
    living = persona.living_area
    if living in areas:
        return living
    matches = [a for a in areas if a.startswith(living)] if living else []
    return matches[0] if matches else None
