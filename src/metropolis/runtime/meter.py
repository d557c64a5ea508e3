"""Time-weighted occupancy: how many things (LLM requests, running agents) were in flight on average."""

from __future__ import annotations

from collections.abc import Callable

from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse


class Occupancy:
    """Integrates a count over a clock; `mean` is the time-weighted average since the first change."""

    __slots__ = ("_area", "_clock", "_last", "_start", "count", "peak")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._start: float | None = None
        self._last = 0.0
        self._area = 0.0
        self.count = 0
        self.peak = 0

    def change(self, delta: int) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        else:
            self._area += self.count * (now - self._last)
        self._last = now
        self.count += delta
        if self.count > self.peak:
            self.peak = self.count

    def mean(self, until: float | None = None) -> float:
        if self._start is None:
            return 0.0
        end = self._clock() if until is None else until
        area = self._area + self.count * (end - self._last)
        span = end - self._start
        return area / span if span > 0 else 0.0


class MeteredBackend:
    """Wraps a backend to count the requests in flight. Calls and tokens are counted once, elsewhere: by the
    run's accounting listener (`metropolis.llm.accounting.Accounting`), from the engine's call records."""

    def __init__(self, inner: LLMBackend, clock: Callable[[], float]) -> None:
        self.inner = inner
        self.in_flight = Occupancy(clock)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.in_flight.change(+1)
        try:
            return await self.inner.complete(request)
        finally:
            self.in_flight.change(-1)
