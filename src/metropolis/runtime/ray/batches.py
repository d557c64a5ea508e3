"""The controller's dispatches to one worker, gathered for one loop turn and sent in one Ray call.

A Ray call costs the controller about 0.6 ms of CPU and a return about as much again, as much as the rest of a
unit (measured on 2 cores): at a thousand agents against a slow server, the controller then spends its time in
Ray, and requests wait for it instead of being at the server. The units the loop dispatches in one turn (after a
batch of commits) go to a worker in one call, and their outcomes come back in groups, each group as soon as it is
done (a streaming return), so no unit waits for a slower one in its batch. A lone unit takes the plain call,
which is cheaper for one.

Each dispatch still has its own future: a worker's death fails every unit of its batches not yet answered
(`RayActorError`, so each is dispatched again), an agent's error fails only its unit, and a dispatch given up on
can still be answered late, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from metropolis.runtime.ray.messages import UnitFailure, UnitOrder, UnitOutcome

Waiting = list[tuple[UnitOrder, "asyncio.Future[UnitOutcome]"]]


class Batches:
    """Orders waiting for the end of the loop's turn, per worker handle, and the calls that carry them."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[Any, Waiting]] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self.calls = 0  # Ray calls made, for the bench: units dispatched over calls is the mean batch

    def send(self, handle: Any, order: UnitOrder) -> asyncio.Future[UnitOutcome]:
        """The order's outcome, once its worker has run it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[UnitOutcome] = loop.create_future()
        batch = self._waiting.get(id(handle))
        if batch is None:
            batch = self._waiting[id(handle)] = (handle, [])
            loop.call_soon(self._flush, id(handle))
        batch[1].append((order, future))
        return future

    def _flush(self, key: int) -> None:
        handle, waiting = self._waiting.pop(key)
        self.calls += 1
        call = asyncio.ensure_future(self._one(handle, waiting) if len(waiting) == 1 else self._many(handle, waiting))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _one(self, handle: Any, waiting: Waiting) -> None:
        ((order, future),) = waiting
        try:
            outcome = await handle.run.remote(order)
        except BaseException as error:  # the worker's death or the agent's error: the dispatch's to handle
            _fail(future, error)
        else:
            _settle(future, outcome)

    async def _many(self, handle: Any, waiting: Waiting) -> None:
        by_fence = {order.fence: future for order, future in waiting}
        try:
            async for group in handle.run_many.remote([order for order, _ in waiting]):
                for outcome in await group:
                    future = by_fence.pop(outcome.fence)
                    if isinstance(outcome, UnitFailure):
                        _fail(future, outcome.error)
                    else:
                        _settle(future, outcome)
        except BaseException as error:
            for future in by_fence.values():
                _fail(future, error)
            return
        for future in by_fence.values():
            _fail(future, RuntimeError("a worker ended a batch without answering every unit: a worker bug"))


def _settle(future: asyncio.Future[UnitOutcome], outcome: UnitOutcome) -> None:
    if not future.done():  # a run that ends cancels what is still waiting
        future.set_result(outcome)


def _fail(future: asyncio.Future[UnitOutcome], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
