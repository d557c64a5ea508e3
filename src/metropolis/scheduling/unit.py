"""The record that flows from a scheduler to a runtime and back."""

from __future__ import annotations

from dataclasses import dataclass

from metropolis.compiled import picklable


@dataclass(frozen=True, slots=True, init=False)
class WorkUnit:
    """One cluster's step: `members` execute `step` one after another, in this order.

    `group` is the coupled cluster the members belong to at that step: the only agents a member may write into
    (start a conversation with). For `serial` a unit holds one agent but still carries its whole cluster.
    """

    step: int
    members: tuple[int, ...]
    group: tuple[int, ...]

    def __init__(self, step: int, members: tuple[int, ...], group: tuple[int, ...]) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "group", group)


picklable(WorkUnit)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
