"""The records made on every agent-step and LLM call write out their `__init__` (compiled, the dataclass's own
would be a Python function): each must take exactly its fields, in order, and make what a dataclass would."""

from __future__ import annotations

import dataclasses
import importlib
from collections import deque

import pytest

from metropolis.compiled import MODULES
from metropolis.engine.agent import Observation
from metropolis.engine.members import Journal, KernelTasks, MemberRun, UnitRun, UnitStats
from metropolis.engine.records import CallRecord, Plan, StepRecord
from metropolis.engine.state import AgentState
from metropolis.kernel import Environment
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.scheduling.unit import WorkUnit


def _written_out() -> list[type]:
    """Every dataclass in the compiled set that writes its own `__init__` (`init=False`) taking its fields, which is
    all but the serving model's `Job` (its caller gives what the request asks; the rest is its state)."""
    found = []
    for name in MODULES:
        module = importlib.import_module(f"metropolis.{name.replace('/', '.')}")
        for cls in vars(module).values():
            params = getattr(cls, "__dataclass_params__", None)
            if (
                isinstance(cls, type)
                and cls.__module__ == module.__name__
                and params is not None
                and not params.init
                and cls.__name__ != "Job"
            ):
                found.append(cls)
    return found


def _unit() -> UnitRun:
    return UnitRun((0,), KernelTasks(Environment()), lambda a: {}, lambda a, s: None, lambda k, run: _never())


async def _never() -> None:
    raise AssertionError("not run")


# Each written-out class with every field given, positionally: distinct values, so a field set from the wrong
# argument (or not at all) shows.
EXAMPLES: list[tuple[type, tuple[object, ...]]] = [
    (
        LLMRequest,
        ("a", 1, "f", ({"role": "user", "content": "x"},), 64, 0.5, 10, 20, {"type": "object"}, 3, {"k": 1}, True),
    ),
    (LLMResponse, ("t", 1, 2, 0.5, 1.5, "e", 2, 0.7, 0.9)),
    (CallRecord, (1, "a", 2, "f", 3, 4, 0.25, 1.0, "e", "p", "o", 2)),
    (StepRecord, (1, "a", 2, AgentState((1, 2)), (3,), (4,), 1, 0.25, 1.0, Plan(2, 3))),
    (AgentState, ((1, 2), "walking", ("e",))),
    (Plan, (1, 2)),
    (WorkUnit, (3, (1, 2), (1, 2, 3))),
    (Observation, (1, "b", AgentState((0, 0)), 1.5)),
    (Journal, ({(1,): deque()},)),
    (MemberRun, (_unit(), 2, True, [])),
    (UnitStats, (1, 2, 3, 4)),
]


def test_every_written_out_init_has_an_example() -> None:
    assert {cls.__name__ for cls in _written_out()} == {cls.__name__ for cls, _ in EXAMPLES}


@pytest.mark.parametrize(("cls", "args"), EXAMPLES, ids=lambda x: x.__name__ if isinstance(x, type) else "")
def test_init_takes_every_field_in_order_and_sets_it(cls: type, args: tuple[object, ...]) -> None:
    """A field added to the class but not to `__init__` (or set from the wrong argument) fails here."""
    fields = [f.name for f in dataclasses.fields(cls)]
    made = cls(*args)  # positionally, in the fields' order (compiled methods carry no signature to compare)
    assert [getattr(made, name) for name in fields] == list(args)
    assert made == cls(**dict(zip(fields, args, strict=True)))  # and by the fields' names
    with pytest.raises(TypeError):
        cls(*args, None)  # no parameter past the fields
    if cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, fields[0], args[0])


def test_defaults_equality_and_hash_are_a_dataclasses() -> None:
    request = LLMRequest("a", 1, "f")
    assert (request.messages, request.max_tokens, request.temperature, request.hints, request.interactive) == (
        (),
        128,
        0.0,
        {},
        False,
    )
    assert request.hints is not LLMRequest("a", 1, "f").hints  # a fresh dict each, as the default factory made
    assert request == LLMRequest(agent="a", step=1, function="f", hints={})
    assert dataclasses.replace(request, interactive=True).priority < request.priority
    kwargs = dict(agent=1, name="a", step=2, function="f", prompt_tokens=3, output_tokens=4, start=0.0, end=1.0)
    assert hash(CallRecord(endpoint="e", **kwargs)) == hash(CallRecord(endpoint="e", **kwargs))  # type: ignore[arg-type]
    assert CallRecord(endpoint="e", **kwargs).attempts == 1  # type: ignore[arg-type]
    assert AgentState((1, 2)) == AgentState((1, 2), "", ())
    assert (
        LLMResponse("t", 1, 2).endpoint == ""
        and repr(AgentState((0, 0))) == "AgentState(pos=(0, 0), action='', events=())"
    )


def test_errors_read_like_a_constructors() -> None:
    with pytest.raises(TypeError, match="'bogus'"):  # compiled: "'bogus' is an invalid keyword argument"
        LLMRequest(agent="a", step=0, function="f", bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"missing|required"):
        LLMRequest(agent="a")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="names an earlier next call"):
        Plan(5, 4)
