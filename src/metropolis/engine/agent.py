"""The agent API: subclass `Agent`, write `async def step(self, ctx)`. Mesa users should feel at home.

An agent's step observes the world as of its own step through `ctx`, may call the LLM, and acts: it moves at most
V, sets its action, says things, and may write into another agent of its cluster (start a conversation). Everything
random must come from `ctx.rng`, which is seeded by (run seed, agent, step): that is what lets every scheduler
reproduce the `serial` run exactly.

`StepContext` is the only door between agent code and the engine: what a step sees and does.
"""

from __future__ import annotations

import copy
import random
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from mypy_extensions import mypyc_attr

from metropolis.compiled import picklable, set_state, state_of
from metropolis.engine.records import CallRecord, Plan
from metropolis.engine.seeding import seeded_random
from metropolis.engine.state import AgentState
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.world.spatial import Pos
from metropolis.world.world import World

if TYPE_CHECKING:
    from metropolis.engine.members import MemberRun


@mypyc_attr(allow_interpreted_subclasses=True)
class Agent:
    """Base class for user agents. `unique_id` is assigned when the simulation takes the agent."""

    # It reads and writes (`ctx.partner`) only agents it sees, within R at its step, as a Generative Agents persona
    # starts a conversation only with an agent in view. A promise a policy may build on (two such agents farther
    # than R apart need not run as one unit); `ctx.partner` refuses any other under every policy.
    talks_in_sight: bool = False

    def __init__(self, name: str, pos: Pos, action: str = "idle") -> None:
        self.name = name
        self.start_pos = pos
        self.start_action = action
        self.unique_id: int | None = None

    def initial_state(self) -> AgentState:
        return AgentState(self.start_pos, self.start_action)

    async def step(self, ctx: StepContext) -> None:
        """Execute one step. The default does nothing: the agent stays where it is."""

    def snapshot(self) -> object:
        """A comparable digest of private state, used to check that schedulers agree beyond public state."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything private this agent's future steps depend on, as a picklable dict that compares equal
        exactly when the states are equal: checkpoints save it, a resumed run checks it got the same, and a
        coupled member whose step must run again (restarted by a write from an earlier member) is restored from it.

        The default deep-copies the instance's attributes except `unique_id` (which the simulation assigns).
        Override it when some attributes are fixed at construction (configuration, shared read-only objects
        such as an embedder or a map): saving only what steps change is smaller and faster."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k != "unique_id"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (a copy, so the dict can be loaded again)."""
        for key, value in state.items():
            setattr(self, key, copy.deepcopy(value))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (Ray ships agents to its workers) with a subclass's own attributes, compiled or not."""
        return state_of(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        set_state(self, state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@dataclass(frozen=True, slots=True, init=False)
class Observation:
    """Another agent as it was at the observer's step."""

    agent_id: int
    name: str
    state: AgentState
    distance: float

    def __init__(self, agent_id: int, name: str, state: AgentState, distance: float) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "agent_id", agent_id)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "distance", distance)


def nearest_first(o: Observation) -> tuple[float, int]:
    """The order of what a step observes: nearest first, ties by agent id."""
    return o.distance, o.agent_id


@mypyc_attr(native_class=False)  # mypyc compiles no subclass of a builtin exception but Exception
class InteractionError(RuntimeError):
    """An agent tried to write into an agent outside its cluster."""


@mypyc_attr(allow_interpreted_subclasses=True)
class StepHost(ABC):
    """What a step context needs of the run that built it: the `Simulation`, a speculative chain's `Overlay`, a
    Ray worker's `UnitHost`. A base class rather than a Protocol: every step reads it, and compiled code reads a
    class's attributes and calls its methods natively, a protocol's through Python (metropolis/compiled.py)."""

    world: World
    agents: list[Agent]
    seed: int
    record_text: bool
    start_seconds: float

    @abstractmethod
    def state_at(self, agent: int, step: int) -> AgentState:
        """The agent's committed state as of `step` (what its step starts from)."""

    @abstractmethod
    def neighbors_at(self, me: int, step: int, pos: Pos, radius: float) -> list[Observation]: ...

    @abstractmethod
    def publish_plan(self, agent: int, plan: Plan) -> None: ...

    def touch_apart(self, agent: int, other: int) -> None:
        """`agent`'s step touches `other` (`ctx.partner`): where the two run apart on a bet that they would not
        (the `speculative` policy's `apart`), undo that bet here by raising; else do nothing."""
        return None

    def partners_closed(self, agent: int) -> None:
        """`agent`'s step will touch no other agent (`StepContext.no_more_partners`)."""
        return None


@mypyc_attr(allow_interpreted_subclasses=True)
class StepContext:
    """Built by the engine for one agent-step; collects the state the agent commits for the next step."""

    __slots__ = (
        "_action",
        "_closed",
        "_events",
        "_llm",
        "_member",
        "_pos",
        "_rng",
        "_sim",
        "agent_id",
        "calls",
        "group",
        "observed",
        "partners",
        "published_plan",
        "state",
        "step",
        "still_until",
        "world",
    )

    def __init__(
        self,
        sim: StepHost,
        agent_id: int,
        step: int,
        group: tuple[int, ...],
        llm: LLMBackend | None,
        member: MemberRun | None = None,
    ) -> None:
        self._sim = sim
        self._member = member  # set when the unit's members run together: partner access follows their rule
        self.agent_id = agent_id
        self.step = step
        self.group = group
        self._llm = llm
        self.state = sim.state_at(agent_id, step)
        self.world = sim.world
        self._rng: random.Random | None = None
        self._pos = self.state.pos
        self._action = self.state.action
        self._events: list[str] = []
        self._closed = False  # said it touches no other agent more (`no_more_partners`)
        self.observed: set[int] = set()
        self.partners: set[int] = set()
        self.calls: list[CallRecord] = []
        self.published_plan: Plan | None = None
        self.still_until: int | None = None

    @property
    def rng(self) -> random.Random:
        """Seeded by (run seed, agent, step); built on first use, since seeding costs more than most steps."""
        if self._rng is None:
            self._rng = seeded_random(f"{self._sim.seed}:{self.agent_id}:{self.step}")
        return self._rng

    @property
    def agent(self) -> Agent:
        return self._sim.agents[self.agent_id]

    @property
    def pos(self) -> Pos:
        """Where the agent will be at the next step (its current position until it moves)."""
        return self._pos

    @property
    def time_of_day(self) -> float:
        """Simulated seconds since the start of the run, at this step."""
        return self._sim.start_seconds + self.step * self.world.seconds_per_step

    # -- observe ----------------------------------------------------------------------------------------------

    def observe(self) -> list[Observation]:
        """Every other agent within the perception radius R, as of this step, nearest first."""
        found = self._sim.neighbors_at(self.agent_id, self.step, self.state.pos, self.world.perception_radius)
        self.observed.update(o.agent_id for o in found)
        return found

    # -- act --------------------------------------------------------------------------------------------------

    def move(self, pos: Pos) -> None:
        """Move to `pos`, at most V from where the agent stands at this step."""
        problem = self.world.check_move(self.state.pos, pos)
        if problem is not None:
            raise ValueError(f"{self.agent.name} at step {self.step}: {problem}")
        self._pos = pos

    def act(self, action: str) -> None:
        self._action = action

    def say(self, text: str) -> None:
        self._events.append(text)

    def partner(self, other: int) -> Agent:
        """The agent `other`, to read or write its private state (a conversation); only agents of this agent's
        cluster qualify. When the cluster's members run together, this is where they are put in the serial order
        (engine/members.py): the step may be restarted here, and a later partner restarted after it."""
        if self._closed:
            raise InteractionError(
                f"{self.agent.name} at step {self.step} cannot interact with agent {other}: it said it would touch no "
                "other agent at this step (ctx.no_more_partners)"
            )
        if other != self.agent_id:
            self._sim.touch_apart(self.agent_id, other)  # raises where the two run apart on a bet
        if other == self.agent_id or other not in self.group:
            raise InteractionError(
                f"{self.agent.name} at step {self.step} cannot interact with agent {other}: only agents of its "
                f"cluster {sorted(set(self.group) - {self.agent_id})} can be written into"
            )
        if self.agent.talks_in_sight and not self._in_sight(other):
            raise InteractionError(
                f"{self.agent.name} at step {self.step} cannot interact with agent {other}: it talks only to agents "
                f"in sight (talks_in_sight), and {other} is farther than R = {self.world.perception_radius}"
            )
        if self._member is not None:
            self._member.touch(other)  # may wait: restarts this step if an earlier member has not finished
        self.partners.add(other)
        return self._sim.agents[other]

    def no_more_partners(self) -> None:
        """Say that this step touches no other agent from here on (`partner` refuses then): an agent that decides
        early whom it talks with lets the agents coupled with it commit without waiting for its step to end (the
        `speculative` policy runs them apart). Optional; saying it twice is harmless."""
        if not self._closed:
            self._closed = True
            self._sim.partners_closed(self.agent_id)

    def _in_sight(self, other: int) -> bool:
        """Whether `other` stands within R as of this step (without counting it as observed)."""
        found = self._sim.neighbors_at(self.agent_id, self.step, self.state.pos, self.world.perception_radius)
        return any(o.agent_id == other for o in found)

    def stay(self, until: int) -> None:
        """Promise to stand where this step leaves the agent through step `until` (asleep until 6 am, inside a
        building): agents near it but ahead need not wait for it meanwhile. Moving before then is an error."""
        if until <= self.step:
            raise ValueError(f"{self.agent.name} at step {self.step}: a promise to stay must reach past this step")
        self.still_until = until

    def plan(self, next_call: int, agent_id: int | None = None) -> Plan:
        """Publish when an agent (this one, or a partner speaking in this step's conversation) will next call
        the LLM: not before step `next_call` (walking a known path, asleep until 6 am). Serving memory hears of
        it at once; this agent's step record keeps its own last plan."""
        plan = Plan(self.step, next_call)
        if agent_id is None or agent_id == self.agent_id:
            agent_id = self.agent_id
            self.published_plan = plan
        elif agent_id not in self.partners:
            self.partner(agent_id)
        self._sim.publish_plan(agent_id, plan)
        return plan

    # -- think ------------------------------------------------------------------------------------------------

    def llm(
        self, function: str, messages: Sequence[dict[str, str]] | str = (), **kwargs: Any
    ) -> Coroutine[Any, Any, LLMResponse]:
        """Call the LLM on this agent's behalf (`await ctx.llm(...)`); the step is sent as the request priority.

        It hands out `llm_for`'s coroutine rather than awaiting it: one frame fewer on every resume of the step."""
        return self.llm_for(self.agent_id, function, messages, **kwargs)

    async def llm_for(
        self, agent_id: int, function: str, messages: Sequence[dict[str, str]] | str = (), **kwargs: Any
    ) -> LLMResponse:
        """Call the LLM for `agent_id` (self, or a partner speaking inside this step's conversation)."""
        if self._llm is None:
            raise RuntimeError("this simulation has no LLM backend; pass one to the runtime")
        if agent_id != self.agent_id and agent_id not in self.partners:
            self.partner(agent_id)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        name = self._sim.agents[agent_id].name
        try:
            request = LLMRequest(
                agent=name,
                agent_id=agent_id,
                step=self.step,
                function=function,
                messages=tuple(messages),
                **kwargs,
            )
        except TypeError as error:  # a keyword it has no field for: compiled, the error names no class
            known = ", ".join(f.name for f in fields(LLMRequest))
            raise TypeError(f"ctx.llm: {error} (LLMRequest's fields: {known})") from None
        member = self._member
        if member is None:
            response = await self._llm.complete(request)
        else:
            reused = member.reuse(request)
            if reused is not None:
                response = reused
            else:
                response = await self._llm.complete(request)
                member.answered(request, response)
                member.check()  # undone while it waited: unwind before agent code runs again
        self.calls.append(
            CallRecord(
                agent=agent_id,
                name=name,
                step=self.step,
                function=function,
                prompt_tokens=response.prompt_tokens,
                output_tokens=response.completion_tokens,
                start=response.start,
                end=response.end,
                endpoint=response.endpoint,
                prompt=request.prompt_text() if self._sim.record_text else None,
                output=response.text if self._sim.record_text else None,
                attempts=response.attempts,
            )
        )
        return response

    def result(self) -> AgentState:
        return AgentState(self._pos, self._action, tuple(self._events))


picklable(Observation)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
