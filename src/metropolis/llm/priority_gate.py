"""The interactive class where the server has none: the client sends a person's requests first, background waits.

vLLM and SGLang take a request priority (`llm/endpoints.py` sends it); llama.cpp's llama-server, llama-cpp-python,
Ollama and OpenAI do not. There a reply a person waits for joins whatever background work is already queued for
the server's slots, and on a CPU every batch the server runs is shared with that work. So the priority has to be
the client's: `PriorityGate` stands in front of the endpoint and, before a background request goes out, asks
its admission policy whether it may start now. Interactive requests (`LLMRequest.interactive`: the player's own
replies, and the requests `PlayerHorizon` marks) never wait.

- `interactive-first` (`InteractiveFirst`): while an interactive request is outstanding, a background request
  starts only if fewer than `cap` background requests are in flight (cap 0, the default: none starts until the
  person has the answer). The server's free slots and its CPU go to the person's call; the background requests
  already at the server finish (llama-server cannot pause a slot: this is admission, not preemption).
- `preempt` (`Preempting`): as `interactive-first`, and when an interactive request goes out, the background
  requests in flight beyond `cap` (the latest first) are called back: their HTTP requests are dropped
  (llama-server drops the task of a closed connection) and they are sent again once admitted. The server's
  slots go to the person at once; the work done on the called-back requests is lost (recompute, as vLLM
  preempts).
- `none` (`NoPriority`): every request starts at once, in the server's own order (the baseline).

The gate only changes when answers come, never what they say: a run through it is the same simulation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from metropolis.registry import lookup


class Admission(Protocol):
    """May a background request start now, with `interactive` interactive requests outstanding and `background`
    background requests in flight? (`preempts`: call back the ones in flight it would not admit now.)"""

    preempts: ClassVar[bool]

    def admits(self, interactive: int, background: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class NoPriority:
    """Every request starts at once: the server's order decides (FCFS over slots for llama-server)."""

    preempts: ClassVar[bool] = False

    def admits(self, interactive: int, background: int) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class InteractiveFirst:
    """Background requests yield to an outstanding interactive one: at most `cap` of them in flight meanwhile."""

    cap: int = 0
    preempts: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.cap < 0:
            raise ValueError(f"the background cap while a person waits must be >= 0, got {self.cap}")

    def admits(self, interactive: int, background: int) -> bool:
        return interactive == 0 or background < self.cap


@dataclass(frozen=True, slots=True)
class Preempting(InteractiveFirst):
    """As `InteractiveFirst`, and the background requests in flight beyond `cap` are called back when a
    person's request goes out (sent again once admitted)."""

    preempts: ClassVar[bool] = True


GATE_POLICIES: dict[str, Callable[[int], Admission]] = {
    "none": lambda cap: NoPriority(),
    "interactive-first": InteractiveFirst,
    "preempt": Preempting,
}


def make_admission(name: str, cap: int = 0) -> Admission:
    """The admission policy called `name` (none, interactive-first or preempt); `cap`: background requests in
    flight allowed while a person waits."""
    return lookup(GATE_POLICIES, name, "priority gate")(cap)


class PriorityGate:
    """An LLM backend in front of `inner` that holds background requests as `admission` says (default:
    `Preempting(cap=0)`, the lowest reply latency measured by `metropolis bench interactive --real`).

    Counts what happened: `held` (background requests that had to wait), `called_back` (sends of background
    requests dropped for a person's, with a preempting policy) and `max_background_while_interactive` (the most
    background requests in flight at once while an interactive one was outstanding)."""

    def __init__(self, inner: LLMBackend, admission: Admission | None = None) -> None:
        self.inner = inner
        self.admission: Admission = admission if admission is not None else Preempting()
        self.interactive = 0  # interactive requests sent and not yet answered
        self.background = 0  # background requests sent and not yet answered
        self.held = 0
        self.called_back = 0
        self.max_background_while_interactive = 0
        self._changed: asyncio.Condition | None = None  # made in the running loop, on first use
        self._sent: list[asyncio.Task[LLMResponse]] = []  # background sends in flight, oldest first
        self._recalled: set[asyncio.Task[LLMResponse]] = set()

    async def complete(self, request: LLMRequest) -> LLMResponse:
        if request.interactive:
            self.interactive += 1
            if self.admission.preempts:
                self._call_back()
            self._note()
            try:
                return await self.inner.complete(request)
            finally:
                self.interactive -= 1
                await self._notify()
        while True:
            await self._admitted()
            send = asyncio.ensure_future(self.inner.complete(request))
            self._sent.append(send)
            try:
                await asyncio.wait([send])
            except asyncio.CancelledError:  # the caller gave up on it
                send.cancel()
                raise
            finally:
                self._sent.remove(send)
                self.background -= 1
                await self._notify()
            recalled = send in self._recalled
            self._recalled.discard(send)
            if not (recalled and send.cancelled()):
                return send.result()
            self.called_back += 1  # sent again once admitted

    async def _admitted(self) -> None:
        changed = self._condition()
        async with changed:
            if not self._admits():
                self.held += 1
                await changed.wait_for(self._admits)  # FIFO: waiters wake, and re-check, in arrival order
            self.background += 1
            self._note()

    def _call_back(self) -> None:
        """Cancel the latest background sends until those left are what the policy would admit now."""
        live = [s for s in self._sent if not s.done() and s not in self._recalled]
        while live and not self.admission.admits(self.interactive, len(live) - 1):
            send = live.pop()
            self._recalled.add(send)
            send.cancel()

    def _admits(self) -> bool:
        return self.admission.admits(self.interactive, self.background)

    def _note(self) -> None:
        if self.interactive:
            self.max_background_while_interactive = max(self.max_background_while_interactive, self.background)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()
