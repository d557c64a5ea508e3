"""Checks of option values shared by the commands, so every command refuses a bad value before it starts work
(bad values are one-line errors, exit code 2)."""

from __future__ import annotations

import math
import os
from pathlib import Path

# Sizes this machine can hold: beyond them a command would allocate tens of GiB or run for weeks.
MAX_AGENTS = 1_000_000
MAX_AGENT_STEPS = 100_000_000
MAX_HOURS = 24.0 * 366
MAX_GPUS = 4096
MAX_WORKERS = 4096  # Ray workers of `run --runtime ray`


def positive_ints(text: str, option: str, most: int = MAX_AGENTS) -> tuple[int, ...]:
    """ "25,100" -> (25, 100); each value must be an integer in [1, most]."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{option} needs integers >= 1, got {text!r}")
    if max(values) > most:
        raise ValueError(f"{option} takes at most {most:,}, got {max(values):,}")
    return values


def names(text: str) -> tuple[str, ...]:
    """ "a, b," -> ("a", "b"): the caller checks them against what it knows."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def some_names(text: str, option: str) -> tuple[str, ...]:
    """`names`, but at least one: `--setting ,` names nothing and is refused."""
    got = names(text)
    if not got:
        raise ValueError(f"{option} names nothing, got {text!r}")
    return got


def number(value: float, option: str, low: float, high: float, *, low_open: bool = False) -> float:
    """`value` if finite and within [low, high] (or (low, high] with `low_open`), else a one-line error."""
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ValueError(f"{option} must be a finite number in {bracket}{low:g}, {high:g}], got {value}")
    return value


def integer(value: int, option: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{option} must be an integer in [{low:,}, {high:,}], got {value:,}")
    return value


def writable_folder(path: Path, option: str) -> Path:
    """`path` is a folder or can be made one: not a file, and its nearest existing ancestor is writable."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {path} is a file; it needs a folder")
    _writable_ancestor(path, option)
    return path


def writable_file(path: Path, option: str) -> Path:
    """`path` can be written as a file: not a folder, its folder exists (or can be made) and is writable."""
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; it needs a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(f"{option} {path}: {path.parent} is a file, not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{option} {path} is not writable")
    _writable_ancestor(path.parent, option)
    return path


def _writable_ancestor(path: Path, option: str) -> None:
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(f"{option} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: cannot write in {probe}")
