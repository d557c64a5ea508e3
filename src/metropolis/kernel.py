"""A discrete-event kernel in the manner of SimPy: a heap of (time, sequence id, callback), and coroutines.

Agent steps are ordinary `async def` coroutines. In virtual time nothing runs them but this kernel: a coroutine
awaits an `Event`, which yields itself up to the `Process` driving it, and the process resumes the coroutine when the
event fires. The sequence id breaks ties, so a run is repeatable to the last event.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any


class Event:
    """Something that happens at one virtual instant; awaiting it suspends the coroutine until then."""

    __slots__ = ("_handled", "_ok", "callbacks", "env", "triggered", "value")

    def __init__(self, env: Environment) -> None:
        self.env = env
        # What runs when it fires: callables, and processes waiting on it (`Process._resume`, called natively:
        # a bound method made, called through Python and freed for every await cost more than the resume).
        self.callbacks: list[Callable[[Event], None] | Process] = []
        self.triggered = False
        self._ok = True
        self._handled = False
        self.value: Any = None

    def succeed(self, value: Any = None) -> Event:
        if self.triggered:
            raise RuntimeError("an event can only be triggered once")
        self.triggered = True
        self.value = value
        env = self.env  # `env.schedule(0.0, self._fire)`, inlined: every process ends here
        env._now_queue.append((env._next_seq(), self._fire, ()))
        return self

    def fail(self, error: BaseException) -> Event:
        if self.triggered:
            raise RuntimeError("an event can only be triggered once")
        self.triggered = True
        self._ok = False
        self.value = error
        self.env.schedule(0.0, self._fire)
        return self

    @property
    def ok(self) -> bool:
        return self._ok

    def _fire_with(self, value: Any) -> None:
        """Trigger and fire at once (a timeout, already at its instant)."""
        if self.triggered:
            raise RuntimeError("an event can only be triggered once")
        self.triggered = True
        self.value = value
        self._fire()

    def _fire(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        if not self._ok and not callbacks and not self._handled:
            raise self.value  # a failed event nobody waits for is never dropped silently
        for cb in callbacks:
            if isinstance(cb, Process):
                cb._resume(self)
            else:
                cb(self)

    def __await__(self) -> Generator[Event, Any, Any]:
        if not self.triggered:
            yield self
        if not self._ok:
            self._handled = True
            raise self.value
        return self.value


class Process(Event):
    """Drives a coroutine; the process itself is an event that fires with the coroutine's return value."""

    __slots__ = ("_coro",)

    def __init__(self, env: Environment, coro: Coroutine[Any, Any, Any]) -> None:
        super().__init__(env)
        self._coro = coro
        env._now_queue.append((env._next_seq(), self._resume, (None,)))  # `env.schedule(0.0, ...)`, inlined

    def _resume(self, event: Event | None) -> None:
        coro = self._coro
        try:
            if event is None or event._ok:
                target = coro.send(None if event is None else event.value)
            else:
                target = coro.throw(event.value)
        except StopIteration as stop:
            self.succeed(stop.value)
            return
        except (KeyboardInterrupt, SystemExit):
            raise  # Ctrl-C and exit stop the run where it is; they are not an agent's failure
        except BaseException as error:
            self.fail(error)
            return
        if not isinstance(target, Event):
            raise TypeError(
                f"a virtual-time coroutine awaited {target!r}; only kernel events (the LLM call, timeouts) can be "
                "awaited in virtual time"
            )
        target.callbacks.append(self)


class Environment:
    """Virtual time in seconds, advanced by `run` from one scheduled callback to the next.

    Most callbacks are scheduled for now (an event fires, a process starts): those skip the heap and wait in a
    FIFO, `_now_queue`. Every callback still runs in (time, sequence id) order, exactly as with one heap: the FIFO
    holds only entries at `now`, in sequence order, so `step` takes the heap's head first only when that is also
    at `now` with a smaller sequence id.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Callable[..., object], tuple[Any, ...]]] = []
        self._now_queue: deque[tuple[int, Callable[..., object], tuple[Any, ...]]] = deque()
        # The last sequence id given out: a plain int, since compiled, `next()` on a counter is a call through
        # Python's builtins, and every scheduled callback takes one.
        self._seq = -1

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def schedule(self, delay: float, fn: Callable[..., object], *args: Any) -> None:
        if delay == 0:
            self._now_queue.append((self._next_seq(), fn, args))
        elif delay > 0:
            heapq.heappush(self._heap, (self.now + delay, self._next_seq(), fn, args))
        else:
            raise ValueError(f"cannot schedule into the past (delay {delay})")

    def event(self) -> Event:
        return Event(self)

    def timeout(self, delay: float, value: Any = None) -> Event:
        """An event that fires `delay` from now: one heap entry, fired when it is popped."""
        ev = Event(self)
        self.schedule(delay, ev._fire_with, value)
        return ev

    def process(self, coro: Coroutine[Any, Any, Any]) -> Process:
        return Process(self, coro)

    def peek(self) -> float:
        if self._now_queue:
            return self.now
        return self._heap[0][0] if self._heap else float("inf")

    def step(self) -> None:
        heap, queue = self._heap, self._now_queue
        if queue and not (heap and heap[0][0] <= self.now and heap[0][1] < queue[0][0]):
            _, fn, args = queue.popleft()
        else:
            t, _, fn, args = heapq.heappop(heap)
            self.now = t
        fn(*args)

    def stop(self) -> None:
        """Drop everything still scheduled: `run` returns at once. The coroutines of processes waiting to be
        resumed are closed, so a stopped run leaves none that Python would report as never awaited."""
        dropped = [*self._heap, *self._now_queue]
        self._heap.clear()  # in place: `run` holds the lists
        self._now_queue.clear()
        for entry in dropped:
            fn = entry[-2]
            owner = getattr(fn, "__self__", None)
            if isinstance(owner, Process):
                with contextlib.suppress(AttributeError):  # compiled by mypyc, never started: no frame to close
                    owner._coro.close()

    def run(self, until: float | None = None) -> None:
        heap, queue = self._heap, self._now_queue
        limit = math.inf if until is None else until
        popleft, heappop = queue.popleft, heapq.heappop
        # `step` inlined: this loop runs every callback of a run. Only this loop moves the clock, so `now` is
        # kept in a local and written back whenever it changes.
        now = self.now
        while True:
            if queue and now <= limit:
                if heap:
                    head = heap[0]
                    if head[0] <= now and head[1] < queue[0][0]:  # due now, and scheduled before the FIFO's head
                        t, _, fn, args = heappop(heap)
                        self.now = now = t
                        fn(*args)
                        continue
                _, fn, args = popleft()
            elif heap and heap[0][0] <= limit:
                t, _, fn, args = heappop(heap)
                self.now = now = t
            else:
                break
            fn(*args)
        if until is not None and until > self.now:
            self.now = until
