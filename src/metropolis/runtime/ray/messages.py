"""What travels between the controller and a Ray worker: one dispatch of a unit (`UnitOrder`) and what running it
produced (`UnitOutcome`). Both are plain picklable records; the controller turns an outcome back into the step
contexts its simulation commits (`restored`), so committing is the same code in every runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metropolis.engine.agent import Observation, StepContext, StepHost
from metropolis.engine.members import UnitStats
from metropolis.engine.records import CallRecord, Plan
from metropolis.engine.state import AgentState
from metropolis.scheduling import WorkUnit
from metropolis.store.base import JournalKey

Answers = dict[JournalKey, dict[str, Any]]  # answered LLM calls, as the journal keys and stores them


@dataclass(frozen=True, slots=True)
class UnitOrder:
    """One dispatch of a unit. `fence` numbers the dispatch: only the unit's latest dispatch may commit, so a
    worker that was given up on (stopped, partitioned) and answers late is refused.

    The unit travels with what its members may read: their public state at the step (`states`) and what each
    observes (`seen`, committed states by the conservative rules). `versions` says which version of each
    touched agent's private state the step must start from; `private` carries the `state_dict` of those the
    worker does not hold (an agent of another worker's group, or a worker that replaced a dead one). `answers`
    are calls a lost dispatch of this unit had already answered (asked again, they come from here)."""

    unit: WorkUnit
    fence: int
    states: dict[int, AgentState]
    seen: dict[int, list[Observation]]
    versions: dict[int, int]
    private: dict[int, dict[str, Any]]
    answers: Answers = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MemberOutcome:
    """One member's step as the controller commits it: the fields of its `StepContext`, and its time span."""

    agent: int
    state: AgentState
    observed: tuple[int, ...]
    partners: tuple[int, ...]
    calls: tuple[CallRecord, ...]
    plan: Plan | None
    still_until: int | None
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class UnitOutcome:
    """What a dispatch produced: each member's step, the private state of every agent the step changed (the
    members and the partners they wrote into), the plans published on the way, the answers the run's journal
    does not hold yet and how many came from it, and the worker's own time for the unit (which the
    controller's overhead leaves out)."""

    fence: int
    members: tuple[MemberOutcome, ...]
    private: dict[int, dict[str, Any]]
    plans: tuple[tuple[int, Plan], ...]
    answered: Answers
    hits: int
    stats: UnitStats
    worker_seconds: float


@dataclass(frozen=True, slots=True)
class UnitFailure:
    """A unit of a batch whose step raised: the agent's own error, which fails the run as it would have here."""

    fence: int
    error: BaseException


class ShippedContext(StepContext):
    """A step context rebuilt on the controller from a worker's `MemberOutcome`: its result is the shipped one."""

    __slots__ = ("_shipped",)

    def __init__(self, sim: StepHost, unit: WorkUnit, member: MemberOutcome) -> None:
        super().__init__(sim, member.agent, unit.step, unit.group, None)
        self._shipped = member.state
        self.observed = set(member.observed)
        self.partners = set(member.partners)
        self.calls = list(member.calls)
        self.published_plan = member.plan
        self.still_until = member.still_until

    def result(self) -> AgentState:
        return self._shipped


def outcome_of(member: StepContext, start: float, end: float) -> MemberOutcome:
    """The picklable part of a step context that ran on a worker."""
    return MemberOutcome(
        agent=member.agent_id,
        state=member.result(),
        observed=tuple(sorted(member.observed)),
        partners=tuple(sorted(member.partners)),
        calls=tuple(member.calls),
        plan=member.published_plan,
        still_until=member.still_until,
        start=start,
        end=end,
    )
