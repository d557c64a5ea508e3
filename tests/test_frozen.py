"""`metropolis.frozen.builder`: the same instances as the frozen dataclass's own constructor, faster."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from metropolis.engine.records import CallRecord, Plan
from metropolis.frozen import builder
from metropolis.llm.types import LLMRequest


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


def test_builds_what_the_constructor_builds() -> None:
    build = builder(Point)
    assert build(1) == Point(1)
    assert build(1, 2, ["a"]) == Point(1, 2, ["a"])
    assert build(x=3, tags=["b"]) == Point(3, 0, ["b"])
    a, b = build(1), build(1)
    assert a.tags is not b.tags  # a fresh default per instance, as with the factory
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.x = 2  # type: ignore[misc]


def test_errors_read_like_the_constructor() -> None:
    build = builder(LLMRequest)
    with pytest.raises(TypeError, match=r"LLMRequest\(\) got an unexpected keyword argument 'bogus'"):
        build(agent="a", step=0, function="f", bogus=1)
    with pytest.raises(TypeError, match="missing"):
        build(agent="a")


def test_real_records() -> None:
    kwargs = dict(agent=1, name="a", step=2, function="f", prompt_tokens=3, output_tokens=4, start=0.0, end=1.0)
    assert builder(CallRecord)(endpoint="e", **kwargs) == CallRecord(endpoint="e", **kwargs)
    request = builder(LLMRequest)(agent="a", step=1, function="f", hints={"k": 1})
    assert request == LLMRequest(agent="a", step=1, function="f", hints={"k": 1})
    assert hash(builder(CallRecord)(endpoint="e", **kwargs)) == hash(CallRecord(endpoint="e", **kwargs))


def test_refuses_what_it_would_get_wrong() -> None:
    with pytest.raises(TypeError, match="__post_init__"):
        builder(Plan)  # checks its fields in __post_init__

    @dataclass(slots=True)
    class Loose:
        x: int

    with pytest.raises(TypeError, match="not a frozen slots dataclass"):
        builder(Loose)
