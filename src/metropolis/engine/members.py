"""Coupled members of one unit run at the same time, with exactly the result of running them one after another.

Members of a unit start together. Each reads the step-s snapshot of the town, as in the serial order; the only
effects one member has on another go through `ctx.partner` (a conversation reads and writes the partner's private
state). Those accesses are made to happen in the serial order by one rule: **a member may touch a partner only
while it is the head**, i.e. while every member before it in the unit's order has finished for good.

- A member that touches a partner while not the head is restarted (from its saved private state) once it is the
  head. Since it then is the head, every earlier member it reads or writes shows its state after its step.
- When the head touches a later member, that member's private state is restored to what it was when its current
  run started (so the head sees it as before its step), and the later member is restarted once the head has
  finished (so it sees the head's writes, as it would have in the serial order).
- A member whose run touched a partner is never restarted: it was the head, and only an earlier member that is
  still running can restart a later one. So writes into a partner are final, and nothing cascades.

Restarts reuse answered LLM calls whose request is unchanged (`Journal`); answers no run ended up using are
counted as wasted. Nothing outside the unit sees a member's work before the unit commits.

The runtime lends two primitives (`Tasks`): run coroutines together, and a signal to wait on. The virtual-time
kernel and asyncio each supply them; with neither (a driver that completes units by hand) a private kernel runs
the members, which then must not await anything but each other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from metropolis.kernel import Environment, Event
from metropolis.llm.types import LLMRequest, LLMResponse

HEAD = -1  # `wait_for` value: restart once this member is the head


class Restart(BaseException):
    """Unwinds a member's step that must run again; a `BaseException`, so agent code's `except Exception`
    does not swallow it (like `asyncio.CancelledError`)."""


class Signal(Protocol):
    """Something to wait on until `fire` is called (once)."""

    def fire(self) -> None: ...

    def __await__(self) -> Generator[Any, Any, Any]: ...


class Tasks(Protocol):
    """What a runtime lends the members of a unit: run coroutines together, and signals."""

    def gather(self, coros: list[Coroutine[Any, Any, Any]]) -> Awaitable[list[Any]]: ...

    def signal(self) -> Signal: ...


class KernelSignal:
    __slots__ = ("event",)

    def __init__(self, env: Environment) -> None:
        self.event = env.event()

    def fire(self) -> None:
        if not self.event.triggered:
            self.event.succeed()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.event.__await__()


class KernelTasks:
    """`Tasks` in virtual time: each member a kernel process."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def signal(self) -> Signal:
        return KernelSignal(self.env)

    def gather(self, coros: list[Coroutine[Any, Any, Any]]) -> Event:
        done = self.env.event()
        results: list[Any] = [None] * len(coros)
        index: dict[Event, int] = {}  # each member's process -> its place (one callback for all, no partials)

        def finished(ev: Event) -> None:
            if done.triggered:
                return
            if not ev.ok:
                done.fail(ev.value)
                return
            results[index.pop(ev)] = ev.value
            if not index:
                done.succeed(results)

        for i, coro in enumerate(coros):
            process = self.env.process(coro)
            index[process] = i
            process.callbacks.append(finished)
        return done


class AsyncioSignal:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def fire(self) -> None:
        self.event.set()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.event.wait().__await__()


class AsyncioTasks:
    """`Tasks` in real time: each member an asyncio task."""

    def signal(self) -> Signal:
        return AsyncioSignal()

    def gather(self, coros: list[Coroutine[Any, Any, Any]]) -> Awaitable[list[Any]]:
        return asyncio.gather(*coros)


def request_key(request: LLMRequest) -> tuple[object, ...]:
    """What makes two calls the same call: who speaks, what for, the prompt and the sampling arguments (not the
    serving hints, which the run adds as it goes)."""
    r = request
    return (
        r.agent_id,
        r.function,
        r.prompt_text(),
        r.max_tokens,
        r.temperature,
        r.prompt_tokens,
        r.output_tokens,
        repr(r.json_schema),
    )


@dataclass(slots=True, init=False)
class Journal:
    """One member's answered LLM calls across its runs: a restart takes an unchanged call's answer from here.

    Keys (`request_key`) are computed only once a restart put answers here: most members never restart, and
    their calls then cost no key at all."""

    available: dict[tuple[object, ...], deque[LLMResponse]]

    def __init__(self, available: dict[tuple[object, ...], deque[LLMResponse]] | None = None) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        self.available = {} if available is None else available

    def take(self, request: LLMRequest) -> LLMResponse | None:
        if not self.available:
            return None
        answers = self.available.get(request_key(request))
        return answers.popleft() if answers else None

    def put_back(self, used: list[tuple[LLMRequest, LLMResponse]]) -> None:
        for request, response in used:
            self.available.setdefault(request_key(request), deque()).append(response)

    def left_over(self) -> list[LLMResponse]:
        return [r for answers in self.available.values() for r in answers]


@dataclass(slots=True, init=False)
class MemberRun:
    """One attempt at one member's step: what it touched and which answers it used."""

    unit: UnitRun
    index: int
    stale: bool
    used: list[tuple[LLMRequest, LLMResponse]]

    def __init__(
        self,
        unit: UnitRun,
        index: int,
        stale: bool = False,
        used: list[tuple[LLMRequest, LLMResponse]] | None = None,
    ) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        self.unit = unit
        self.index = index
        self.stale = stale
        self.used = [] if used is None else used

    def touch(self, other: int) -> None:
        """Called by `ctx.partner` before the partner is handed out."""
        self.check()
        self.unit.touch(self.index, other)

    def check(self) -> None:
        """Raise `Restart` if this run was undone while it waited."""
        if self.stale:
            raise Restart

    def reuse(self, request: LLMRequest) -> LLMResponse | None:
        """The call's answer from an earlier run of this member, when the call is unchanged (`request_key`)."""
        response = self.unit.journals[self.index].take(request)
        if response is not None:
            self.used.append((request, response))
        return response

    def answered(self, request: LLMRequest, response: LLMResponse) -> None:
        """A call `reuse` had no answer for came back: keep it for a restart."""
        self.used.append((request, response))


StepRunner = Callable[[int, MemberRun | None], Coroutine[Any, Any, Any]]


@dataclass(slots=True, init=False)
class UnitStats:
    """What running members together cost: restarted runs, and answers of LLM calls no run used."""

    restarts: int
    wasted_calls: int
    wasted_prompt_tokens: int
    wasted_output_tokens: int

    def __init__(
        self, restarts: int = 0, wasted_calls: int = 0, wasted_prompt_tokens: int = 0, wasted_output_tokens: int = 0
    ) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        self.restarts = restarts
        self.wasted_calls = wasted_calls
        self.wasted_prompt_tokens = wasted_prompt_tokens
        self.wasted_output_tokens = wasted_output_tokens

    def add(self, other: UnitStats) -> None:
        self.restarts += other.restarts
        self.wasted_calls += other.wasted_calls
        self.wasted_prompt_tokens += other.wasted_prompt_tokens
        self.wasted_output_tokens += other.wasted_output_tokens


class UnitRun:
    """The members of one unit (ids in the unit's order), run together under the head rule (module docstring).

    `members[k]` is the agent id of the k-th member; `save`/`load` take and restore an agent's private state;
    `step(k, run)` runs member k's step once and returns its result.
    """

    def __init__(
        self,
        members: tuple[int, ...],
        tasks: Tasks,
        save: Callable[[int], dict[str, Any]],
        load: Callable[[int, dict[str, Any]], None],
        step: StepRunner,
    ) -> None:
        self.members = members
        self.position = {agent: k for k, agent in enumerate(members)}
        self.tasks = tasks
        self._save, self._load, self._step = save, load, step
        n = len(members)
        self.done = [False] * n
        self.saved: list[dict[str, Any] | None] = [None] * n
        self.current: list[MemberRun | None] = [None] * n
        self.wait_for: list[int | None] = [None] * n
        self.journals = [Journal() for _ in range(n)]
        self.failed: BaseException | None = None  # the first error a member's step raised (`run`)
        self.stats = UnitStats()
        # What waiting members wait on, made by the first to wait: most notifications find nobody waiting, and
        # firing a signal nobody awaits would only schedule a callback that does nothing.
        self._changed: Signal | None = None

    async def run(self) -> list[Any]:
        """Every member's result; or, when a step raised, that error, once every member has stopped: nothing of the
        unit runs on after it ended (a speculative unit undone restores its members' state only then)."""
        results = await self.tasks.gather([self._member(k) for k in range(len(self.members))])
        # Each run points back at this unit: drop them now it is over, so refcounting frees the unit at once
        # (a cycle per unit would wait for the cyclic collector, which then walks thousands of them).
        self.current = [None] * len(self.members)
        for journal in self.journals:
            for response in journal.left_over() if journal.available else ():
                self.stats.wasted_calls += 1
                self.stats.wasted_prompt_tokens += response.prompt_tokens
                self.stats.wasted_output_tokens += response.completion_tokens
        if self.failed is not None:
            raise self.failed
        return results

    # -- the rule ---------------------------------------------------------------------------------------------

    def is_head(self, k: int) -> bool:
        done = self.done  # over a generator, which mypyc compiles to a loop (`all` of a slice is a Python call)
        return all(done[j] for j in range(k))

    def touch(self, k: int, other: int) -> None:
        """Member k touches agent `other` of the unit: allowed only as the head; a later member is undone."""
        if not self.is_head(k):
            self.wait_for[k] = HEAD
            raise Restart
        j = self.position[other]
        if j < k:
            return  # finished for good: the head sees it after its step, as in the serial order
        run = self.current[j]
        if (run is not None and not run.stale) or self.done[j]:
            saved = self.saved[j]
            assert saved is not None
            self._load(self.members[j], saved)
            if run is not None:
                run.stale = True
            self.done[j] = False
            self.stats.restarts += 1
        self.wait_for[j] = k
        self._notify()

    def _may_start(self, k: int) -> bool:
        w = self.wait_for[k]
        if w is None:
            return True
        if w == HEAD:
            return self.is_head(k)
        return self.done[w] and self.is_head(w)

    # -- one member -------------------------------------------------------------------------------------------

    async def _member(self, k: int) -> Any:
        """Member k's runs until one stands; None once the unit failed (`run`)."""
        agent = self.members[k]
        while True:
            while not self._may_start(k):
                if self.failed is not None:
                    return None
                await self._wait()
            self.wait_for[k] = None
            if k > 0:
                self.saved[k] = self._save(agent)
            run = MemberRun(self, k)
            self.current[k] = run
            error: BaseException | None = None
            try:
                result = await self._step(k, run)
            except Restart:
                if not run.stale:  # it undoes itself: it touched a partner while not the head
                    saved = self.saved[k]
                    assert saved is not None
                    self._load(agent, saved)
                    run.stale = True  # restored already: a toucher meanwhile must not restore it again
                    self.stats.restarts += 1
                self.journals[k].put_back(run.used)
                continue
            except (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt, SystemExit):
                raise  # the run is shut down
            except BaseException as failure:  # `Rollback` too (a speculative unit undone)
                error = failure
            if error is None and not run.stale:
                self.done[k] = True
                self._notify()
            # A result is final, and an error stands, only once this member is the head and this run was not undone:
            # an earlier member may still write into this one and change its step, as in the serial order.
            while not run.stale and not self.is_head(k):
                if self.failed is not None:
                    return None
                await self._wait()
            if run.stale:
                self.journals[k].put_back(run.used)
                continue
            if error is not None:
                self.failed = self.failed or error
                self._notify()
                return None
            return result

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.fire()

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = self.tasks.signal()
        await self._changed


def run_alone(env: Environment, unit: UnitRun) -> list[Any]:
    """Run a unit built on `KernelTasks(env)` for a private `env`, for drivers that lend no `Tasks`: members must
    not await LLM calls (there is no runtime to answer them)."""
    process = env.process(unit.run())
    env.run()
    if not process.triggered:
        raise RuntimeError("a member awaited something no runtime answers; pass the runtime's tasks to execute")
    if not process.ok:
        raise process.value
    return list(process.value)
