"""A replica's waiting queue: in which order waiting requests are offered for admission, chosen by name.

Like vLLM's request queue, a small class per strategy behind one factory:

- `priority` (the default): lowest step first, then arrival. Strict order: when the head cannot be admitted,
  nothing behind it is (no overtaking).
- `fcfs`: arrival order only, as strict.
- `cache-aware` (SGLang's `--schedule-policy lpm`): among the first `window` requests in priority order, those
  whose agent's state is on the GPU go first, and one whose state the memory gate cannot bring in is skipped
  instead of blocking the queue. SGLang falls back to FCFS past 128 waiting requests, hence the default window.

The replica asks `candidates(gate)` for the requests in admission order, `take`s those it admits (or sends off
to load), and calls `settle()` once the round is over.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from metropolis.llm.serving.job import Job
from metropolis.registry import lookup

if TYPE_CHECKING:
    from metropolis.llm.serving.gate import MemoryGate

DEFAULT_WINDOW = 128


class PriorityQueue:
    """Lowest step first, then arrival order; strict (a refused head blocks the queue)."""

    skips_refused = False  # a request the memory gate refuses blocks everyone behind it

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Job]] = []
        self._order = 0
        self.tokens = 0  # KV tokens (prompt + output) of the requests waiting

    def __len__(self) -> int:
        return len(self._heap)

    def rank(self, job: Job) -> int:
        """The first part of the sort key; arrival order breaks ties."""
        return job.priority

    def push(self, job: Job) -> None:
        """A new arrival: give it its place in the order for good."""
        self._order += 1
        job.key = (self.rank(job), self._order)
        self.requeue(job)

    def requeue(self, job: Job) -> None:
        """Put back a request taken at this instant (a cancelled admission), at its old place."""
        heapq.heappush(self._heap, (*job.key, job))
        self.tokens += job.kv_tokens

    def head(self) -> Job | None:
        return self._heap[0][2] if self._heap else None

    def candidates(self, gate: MemoryGate) -> Iterable[Job]:
        """The head, again and again: the replica takes it (or stops) before asking for the next."""
        return self._heads()

    def _heads(self) -> Iterator[Job]:
        heap = self._heap
        while heap:
            yield heap[0][2]

    def take(self, job: Job) -> None:
        """Remove a candidate the replica admitted (for strict queues, always the head)."""
        heapq.heappop(self._heap)
        self.tokens -= job.kv_tokens

    def settle(self) -> None:
        """The admission round is over."""


class FcfsQueue(PriorityQueue):
    """Arrival order only: the step is ignored."""

    def rank(self, job: Job) -> int:
        return 0


class CacheAwareQueue(PriorityQueue):
    """The first `window` requests in priority order, those whose state is on the GPU first (a stable sort);
    a request the gate refuses is skipped, not waited for."""

    skips_refused = True

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"cache-aware queue: the window must be >= 1 request, got {window}")
        super().__init__()
        self.window = window
        self._taken: set[int] = set()

    def candidates(self, gate: MemoryGate) -> Iterable[Job]:
        window = [e[2] for e in heapq.nsmallest(self.window, self._heap)]
        window.sort(key=lambda job: not gate.resident(job))
        return window

    def take(self, job: Job) -> None:
        self._taken.add(id(job))  # removed from the heap in one go when the round is over
        self.tokens -= job.kv_tokens

    def settle(self) -> None:
        if self._taken:
            taken = self._taken
            self._heap = [e for e in self._heap if id(e[2]) not in taken]
            heapq.heapify(self._heap)
            taken.clear()


QUEUES: dict[str, Callable[[int], PriorityQueue]] = {  # name -> factory of the look-ahead window
    "priority": lambda window: PriorityQueue(),
    "fcfs": lambda window: FcfsQueue(),
    "cache-aware": CacheAwareQueue,
}


def make_queue(name: str, window: int = DEFAULT_WINDOW) -> PriorityQueue:
    """The waiting queue called `name`; `window` is the cache-aware queue's look-ahead."""
    return lookup(QUEUES, name, "waiting queue")(window)
