"""Reading a JSON object of records (`{key: record, ...}`) one record at a time, so that a malformed or
truncated file is reported as "record K is broken", not as a character offset into megabytes of text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SPACE = re.compile(r"\s*")
_DECODER = json.JSONDecoder()


def read_text(path: Path) -> str:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return pos if match is None else match.end()


def iter_records(text: str, source: str, what: str = "record") -> Iterator[tuple[str, Any]]:
    """Yield (key, value) for each member of the top-level object; errors name the record they are in."""
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        found = "an empty file" if pos >= len(text) else repr(text[pos : pos + 20])
        raise ValueError(f"{source}: expected a JSON object of {what}s, found {found}")
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "}":
        _expect_end(text, _skip(text, pos + 1), source, None, what)
        return
    previous: str | None = None
    while True:
        after = "at the start" if previous is None else f"after {what} {previous!r}"
        key, pos = _decode(text, pos, source, f"{after}: bad key")
        if not isinstance(key, str):
            raise ValueError(f"{source}: {after}: expected a quoted key, found {key!r}")
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            raise ValueError(f"{source}: {what} {key!r}: expected ':' after the key ({_where(text, pos)})")
        value, pos = _decode(text, _skip(text, pos + 1), source, f"{what} {key!r} is malformed or truncated")
        yield key, value
        pos = _skip(text, pos)
        mark = text[pos : pos + 1]
        if mark == "}":
            _expect_end(text, _skip(text, pos + 1), source, key, what)
            return
        if mark != ",":
            found = "the end of the file (truncated?)" if not mark else repr(mark)
            raise ValueError(f"{source}: after {what} {key!r}: expected ',' or '}}', found {found}")
        previous = key
        pos = _skip(text, pos + 1)


def _decode(text: str, pos: int, source: str, problem: str) -> tuple[Any, int]:
    if pos >= len(text):
        raise ValueError(f"{source}: {problem}: the file ends there (truncated?)")
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: {problem} ({error.msg} at {_where(text, error.pos)})") from None


def _expect_end(text: str, pos: int, source: str, last: str | None, what: str) -> None:
    if pos < len(text):
        after = "the object" if last is None else f"{what} {last!r}, the last one"
        raise ValueError(f"{source}: unexpected text after {after} ({_where(text, pos)})")


@contextmanager
def in_file(path: Path) -> Iterator[None]:
    """Prefix the ValueErrors raised inside with the file they are about."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def get_field(record: Any, name: str, where: str) -> Any:
    """`record[name]`, or a ValueError naming the record and the field."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object, found {type(record).__name__}")
    if name not in record:
        raise ValueError(f"{where}: missing field {name!r}")
    return record[name]


def as_int(value: Any, where: str, name: str) -> int:
    """An integer given as a number or a numeric string (the exports write numbers as strings)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: {name} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError(f"{where}: {name} {value!r} is not an integer")


def as_float(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{where}: {name} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} {value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{where}: {name} {value!r} is not a finite number")
    return number
