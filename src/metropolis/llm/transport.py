"""Getting thousands of requests onto sockets without stalling the event loop.

Two measured problems (httpx 0.28 / httpcore 1.0, 2,000 requests in flight on loopback, 2 cores):
- httpcore's connection pool scans every queued request against every connection on each change, so one pool
  of
  2,000 connections spends seconds per tick in `_assign_requests_to_connections` (the loop stalled for 40-100
  s).
  Many small pools side by side (`ShardedPool`) keep each scan short; a request goes to the least-loaded one.
- Starting 2,000 requests in one loop iteration runs 2,000 connection setups back to back (about a second).
  `TickBudget` admits at most a fixed number of new requests per loop iteration; the rest wait their turn in
  FIFO
  order, a few milliseconds each.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx


class TickBudget:
    """Admits at most `per_tick` callers per event-loop iteration, first come first served."""

    def __init__(self, per_tick: int) -> None:
        if per_tick < 1:
            raise ValueError(f"per_tick must be >= 1, got {per_tick}")
        self.per_tick = per_tick
        self._used = 0
        self._armed = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def admit(self) -> None:
        if self._used < self.per_tick and not self._waiters:
            self._use()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter  # a cancelled waiter is skipped by _next_tick (it is done)

    def _use(self) -> None:
        self._used += 1
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._next_tick)

    def _next_tick(self) -> None:
        self._armed = False
        self._used = 0
        while self._waiters and self._used < self.per_tick:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._use()


class ShardedPool:
    """`connections` connections spread over httpx clients of at most `shard_size` connections each."""

    def __init__(
        self,
        connections: int,
        shard_size: int,
        timeout: httpx.Timeout,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        shards = math.ceil(connections / shard_size)
        per_shard = math.ceil(connections / shards)
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        ssl = httpx.create_ssl_context()  # once: every client would load the CA bundle again (~90 ms each)
        self.clients = [
            httpx.AsyncClient(verify=ssl, timeout=timeout, limits=limits, headers=headers, transport=transport)
            for _ in range(shards)
        ]
        self._load = [0] * shards

    @asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        """The least-loaded client, held for one request."""
        load = self._load
        i = min(range(len(load)), key=load.__getitem__)
        load[i] += 1
        try:
            yield self.clients[i]
        finally:
            load[i] -= 1

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
