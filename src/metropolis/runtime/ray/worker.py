"""The worker side: an async Ray actor that owns a copy of every agent (it runs mostly its own group's) and runs
the units the controller sends it, calling the LLM endpoint itself.

A worker decides and commits nothing. It starts a unit from the private state version the order names (its own
copy, or the `state_dict` the order carries), answers the members' observations from what the order carries, and
sends back what the step produced. Every LLM answer is handed to the journal inbox (another actor) before agent
code sees it, so when a worker dies mid-unit, the unit's next dispatch gets those answers instead of asking again.
In a resumed run, calls answered before the stop come from the run's store, which the worker opens itself.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

import ray

from metropolis.engine.agent import Agent, Observation, StepHost
from metropolis.engine.members import AsyncioTasks, UnitStats
from metropolis.engine.records import Plan
from metropolis.engine.simulation import execute_unit
from metropolis.engine.state import AgentState
from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.journal import prompt_hash
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.runtime.ray.messages import Answers, UnitFailure, UnitOrder, UnitOutcome, outcome_of
from metropolis.store.base import JournalKey, RunStore
from metropolis.world.spatial import Pos
from metropolis.world.world import World

JournalOpener = Callable[[], RunStore]  # opens the run's store where the worker runs (picklable: a partial)


class JournalInbox:
    """The answers of the units in flight, held apart from the workers that asked them (a Ray actor): kept until
    the unit commits (the controller then journals them in the run's store and drops them here)."""

    def __init__(self) -> None:
        self._answers: dict[tuple[int, int], Answers] = {}

    def put(self, key: JournalKey, answer: dict[str, Any]) -> None:
        self._answers.setdefault((key.agent, key.step), {})[key] = answer

    def put_many(self, answers: list[tuple[JournalKey, dict[str, Any]]]) -> None:
        for key, answer in answers:
            self.put(key, answer)

    def answers(self, agents: list[int], step: int) -> Answers:
        found: Answers = {}
        for agent in agents:
            found.update(self._answers.get((agent, step), {}))
        return found

    def forget(self, units: list[tuple[list[int], int]]) -> None:
        """Drop the answers of committed units, each given as its agents and step."""
        for agents, step in units:
            for agent in agents:
                self._answers.pop((agent, step), None)


class InboxPuts:
    """A worker's answers on their way to the inbox, gathered for one turn of its event loop and sent in one Ray
    call: answers from a server come back in bunches (requests sent together end together), and a Ray call per
    answer cost a worker of a thousand agents as much CPU as the rest of its step. Each answer's `put` still
    returns only once the inbox holds it."""

    def __init__(self, inbox: Any) -> None:
        self.inbox = inbox
        self._waiting: list[tuple[JournalKey, dict[str, Any]]] = []
        self._sent: asyncio.Task[None] | None = None  # the call the waiting answers will go in

    def put(self, key: JournalKey, answer: dict[str, Any]) -> asyncio.Task[None]:
        if self._sent is None:
            self._sent = asyncio.ensure_future(self._send())  # its first step runs after this loop turn
        self._waiting.append((key, answer))
        return self._sent

    async def _send(self) -> None:
        waiting, self._waiting, self._sent = self._waiting, [], None
        await self.inbox.put_many.remote(waiting)


class UnitHost(StepHost):
    """What a unit's step contexts ask of their run, answered from the order: one per dispatch."""

    def __init__(self, worker: UnitWorker, order: UnitOrder) -> None:
        self.world: World = worker.world
        self.agents: list[Agent] = worker.agents
        self.seed = worker.seed
        self.record_text = worker.record_text
        self.start_seconds = worker.start_seconds
        self.plans: list[tuple[int, Plan]] = []
        self._seen = order.seen
        self._states = order.states

    def state_at(self, agent: int, step: int) -> AgentState:
        """The one read a step context makes of the store on a worker: its members' states at the unit's step."""
        return self._states[agent]

    def neighbors_at(self, me: int, step: int, pos: Pos, radius: float) -> list[Observation]:
        if me not in self._seen or pos != self._states[me].pos or radius != self.world.perception_radius:
            raise RuntimeError(
                f"agent {self.agents[me].name} observed from {pos} within {radius:g}: on a Ray worker an agent "
                "observes where it stands within the perception radius (ctx.observe), which the controller ships"
            )
        return self._seen[me]

    def publish_plan(self, agent: int, plan: Plan) -> None:
        self.plans.append((agent, plan))


class InboxJournal:
    """An `LLMBackend` keyed as the run's journal keys calls (agent, step, index, prompt hash): a call a lost
    dispatch already had answered comes from the order; a new answer reaches the inbox before it is returned."""

    def __init__(self, worker: UnitWorker, known: Answers, inbox: InboxPuts) -> None:
        self.worker = worker
        self.inner = worker.llm()
        # A lost dispatch's answers, found by what they asked rather than by their index: members run together
        # may reach the backend in another order this time (a partner's reply before the agent's own call).
        self._known: dict[tuple[int, int, str], list[dict[str, Any]]] = {}
        for key, answer in sorted(known.items(), key=lambda item: item[0].index):
            self._known.setdefault((key.agent, key.step, key.prompt_hash), []).append(answer)
        self.inbox = inbox
        self.answered: Answers = {}  # answers the run's journal does not hold yet
        self.hits = 0  # answers from the run's journal
        self.fresh = 0  # answers asked here (in the inbox, and counted in the worker's `holding` until the end)
        self._taken: set[JournalKey] = set()
        self._at: dict[int, tuple[int, int]] = {}

    def _key(self, request: LLMRequest) -> JournalKey:
        agent = -1 if request.agent_id is None else request.agent_id
        step, n = self._at.get(agent, (request.step, 0))
        self._at[agent] = (request.step, (n if step == request.step else 0) + 1)
        return JournalKey(agent, request.step, n if step == request.step else 0, prompt_hash(request))

    def _from_store(self, store: RunStore, key: JournalKey) -> dict[str, Any] | None:
        """The journaled answer to what `key` asks, at whichever index of the agent's calls of the step it was
        recorded (members run together may have asked in another order); each recorded call is used once."""
        index = 0
        while True:
            probe = JournalKey(key.agent, key.step, index, key.prompt_hash)
            try:
                found = store.journal_get(probe)
            except ValueError:  # another question was recorded at this index
                found = {}
            if found is None:
                return None
            if found and probe not in self._taken:
                self._taken.add(probe)
                return found
            index += 1

    async def complete(self, request: LLMRequest) -> LLMResponse:
        key = self._key(request)
        same = self._known.get((key.agent, key.step, key.prompt_hash))
        found = same.pop(0) if same else None
        if found is not None:
            self.answered[key] = found  # not in the run's journal yet: the controller writes it at commit
            return LLMResponse(**found)
        store = self.worker.journal()
        found = None if store is None else self._from_store(store, key)
        if found is not None:  # a resumed run: answered before it stopped
            self.hits += 1
            return LLMResponse(**found)
        if self.inner is None:
            raise RuntimeError("this run has no LLM endpoint; pass one to the Ray runtime")
        worker = self.worker
        await worker.calls_open.wait()
        worker.asking += 1
        try:
            response = await self.inner.complete(request)
            answer = asdict(response)
            await self.inbox.put(key, answer)
        finally:
            worker.asking -= 1
        self.answered[key] = answer
        self.fresh += 1
        worker.holding += 1
        return response


class UnitWorker:
    """One worker (made a Ray actor by the controller's pool). `held` maps an agent to the version of its private
    state this worker's copy is at (every agent starts at version 0, the state the agents were built with)."""

    def __init__(
        self,
        world: World,
        agents: list[Agent],
        seed: int,
        record_text: bool,
        start_seconds: float,
        serial_members: bool,
        endpoint: EndpointConfig | None,
        inbox: Any,
        journal: JournalOpener | None = None,
    ) -> None:
        self.world = world
        self.agents = agents
        for i, agent in enumerate(agents):
            agent.unique_id = i
        self.seed = seed
        self.record_text = record_text
        self.start_seconds = start_seconds
        self.serial_members = serial_members
        self.endpoint = endpoint
        self.inbox = inbox
        self._puts: InboxPuts | None = None  # made on first use: it needs the actor's event loop
        self._open_journal = journal
        self._journal: RunStore | None = None
        self.held = dict.fromkeys(range(len(agents)), 0)
        self._client: OpenAIClient | None = None
        self._tasks = AsyncioTasks()
        self.asking = 0  # LLM calls sent and not yet answered into the inbox
        self.holding = 0  # answers in the inbox whose units still run here
        self.calls_open = asyncio.Event()
        self.calls_open.set()

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The Ray node this worker runs on (a node lost takes its workers with it)."""
        return str(ray.get_runtime_context().get_node_id())

    async def run(self, order: UnitOrder) -> UnitOutcome:
        began = time.monotonic()
        for agent, state in order.private.items():
            self.agents[agent].load_state_dict(state)
        for agent, version in order.versions.items():
            if agent not in order.private and self.held[agent] != version:
                raise RuntimeError(
                    f"worker holds version {self.held[agent]} of agent {agent}'s private state, the order needs "
                    f"{version} and did not carry it: a controller bug"
                )
        host = UnitHost(self, order)
        if self._puts is None:
            self._puts = InboxPuts(self.inbox)
        llm = InboxJournal(self, order.answers, self._puts)
        stats = UnitStats()
        try:
            results = await execute_unit(host, order.unit, llm, time.monotonic, self._tasks, self.serial_members, stats)
        finally:
            self.holding -= llm.fresh
        members = tuple(outcome_of(ctx, start, end) for ctx, start, end in results)
        touched = set(order.unit.members).union(*(m.partners for m in members))
        for agent in touched:
            self.held[agent] = order.versions[agent] + 1
        return UnitOutcome(
            fence=order.fence,
            members=members,
            private={a: self.agents[a].state_dict() for a in sorted(touched)},
            plans=tuple(host.plans),
            answered=llm.answered,
            hits=llm.hits,
            stats=stats,
            worker_seconds=time.monotonic() - began,
        )

    async def run_many(self, orders: list[UnitOrder]) -> AsyncIterator[list[UnitOutcome | UnitFailure]]:
        """Several units in one call, their outcomes sent back in groups as they finish: a Ray call or return
        costs the controller about as much as the rest of a unit, and units dispatched together mostly end
        together (`batches.py`)."""
        pending = {asyncio.ensure_future(self._outcome(order)) for order in orders}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            yield [task.result() for task in done]

    async def _outcome(self, order: UnitOrder) -> UnitOutcome | UnitFailure:
        try:
            return await self.run(order)
        except Exception as error:
            return UnitFailure(order.fence, error)

    async def quiesce(self) -> int:
        """Fault injection: from now on no LLM call starts; return once none is being asked (each answer is in the
        inbox), so that killing this worker next loses no answer. Returns the answers its running units hold."""
        self.calls_open.clear()
        while self.asking:
            await asyncio.sleep(0.001)
        return self.holding

    def reopen(self) -> None:
        """Fault injection: calls may start again (the kill `quiesce` prepared was called off)."""
        self.calls_open.set()

    def journal(self) -> RunStore | None:
        """The run's store, to read journaled answers from (a resumed run only), opened on first use."""
        if self._journal is None and self._open_journal is not None:
            self._journal = self._open_journal()
        return self._journal

    def llm(self) -> OpenAIClient | None:
        if self.endpoint is None:
            return None
        if self._client is None:
            self._client = OpenAIClient(self.endpoint)
        return self._client
