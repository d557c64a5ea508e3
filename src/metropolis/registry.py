"""Policies chosen by name: one lookup and one error wording for every registry in the project."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def unknown(what: str, name: object, valid: Iterable[str]) -> ValueError:
    """The one error for a name no registry knows: it says what was asked and lists the valid names."""
    return ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(valid)}")


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """`registry[name]`, or a ValueError that lists the valid names."""
    try:
        return registry[name]
    except KeyError:
        raise unknown(what, name, registry) from None


def check_name(name: str, valid: Iterable[str], what: str) -> str:
    """`name` if it is one of `valid`, else the same ValueError as `lookup`."""
    names = list(valid)
    if name not in names:
        raise unknown(what, name, names)
    return name
