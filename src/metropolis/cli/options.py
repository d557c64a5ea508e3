"""Parsing of comma-separated option values, shared by the commands (bad values are one-line errors)."""

from __future__ import annotations


def positive_ints(text: str, option: str) -> tuple[int, ...]:
    """ "25,100" -> (25, 100); each value must be an integer >= 1."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{option} needs integers >= 1, got {text!r}")
    return values


def names(text: str) -> tuple[str, ...]:
    """ "a, b," -> ("a", "b"): the caller checks them against what it knows."""
    return tuple(v.strip() for v in text.split(",") if v.strip())
