"""LLM calls a speculative step can abandon: a conflict cancels them, and the step unwinds with `Rollback`.

In virtual time the call races a gate: cancelling fails the gate, so the step stops waiting at once, and the
serving model finishes the job anyway (its tokens are counted as wasted when it does). In real time the call is an
asyncio task: cancelling it closes the stream, so vLLM and SGLang abort the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol

from metropolis.engine.members import AsyncioTasks, KernelTasks, Tasks
from metropolis.kernel import Environment, Event
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse


class Rollback(BaseException):
    """The speculative step was undone by a conflict: unwind without running more agent code."""


class CallOwner(Protocol):
    """The speculative run an LLM call belongs to."""

    doomed: bool
    calls: set[PendingCall]
    used: list[tuple[LLMRequest, LLMResponse]]


class PendingCall:
    """An LLM call of a speculative step that can be abandoned: `cancel` makes its awaiter raise `Rollback`."""

    def __init__(self, coro: Coroutine[Any, Any, LLMResponse], tasks: Tasks | None, waste: Callable[[int], None]):
        self._waste = waste
        self._env: Environment | None = tasks.env if isinstance(tasks, KernelTasks) else None
        self._task: asyncio.Future[LLMResponse] | None = None
        self._coro: Coroutine[Any, Any, LLMResponse] | None = None
        if self._env is not None:
            self._gate = self._env.event()
            self._env.process(coro).callbacks.append(self._answered)
        elif isinstance(tasks, AsyncioTasks):
            self._task = asyncio.ensure_future(coro)
        else:
            self._coro = coro  # no runtime to race it on: it can only be abandoned when it returns

    def _answered(self, ev: Event) -> None:
        if not self._gate.triggered:
            if ev.ok:
                self._gate.succeed(ev.value)
            else:
                self._gate.fail(ev.value)
        elif ev.ok:  # abandoned: the serving model finished it anyway
            response: LLMResponse = ev.value
            self._waste(response.prompt_tokens + response.completion_tokens)

    def cancel(self) -> None:
        if self._env is not None and not self._gate.triggered:
            self._gate.fail(Rollback())
        elif self._task is not None:
            self._task.cancel()  # closes the stream: the server aborts the request

    def __await__(self) -> Generator[Any, Any, LLMResponse]:
        if self._env is not None:
            return self._gate.__await__()
        if self._task is not None:
            return self._task.__await__()
        assert self._coro is not None
        return self._coro.__await__()


class CancellableLLM:
    """The LLM backend a speculative unit sees: every call can be abandoned by a conflict."""

    def __init__(
        self,
        inner: LLMBackend,
        run: CallOwner,
        tasks: Tasks | None,
        waste: Callable[[int], None],
        reuse: Callable[[LLMRequest], LLMResponse | None] | None = None,
    ) -> None:
        self.inner, self.run, self.tasks, self._waste = inner, run, tasks, waste
        self._reuse = reuse  # an undone run's answer to the same request, if one is kept (`Speculation`)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        run = self.run
        if run.doomed:
            raise Rollback
        if self._reuse is not None:
            kept = self._reuse(request)
            if kept is not None:
                run.used.append((request, kept))
                return kept
        call = PendingCall(self.inner.complete(request), self.tasks, self._waste)
        run.calls.add(call)
        try:
            response = await call
        except asyncio.CancelledError:
            if run.doomed:
                raise Rollback from None
            raise
        finally:
            run.calls.discard(call)
        if run.doomed:
            self._waste(response.prompt_tokens + response.completion_tokens)
            raise Rollback
        run.used.append((request, response))
        return response
