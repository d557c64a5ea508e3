"""Which replica serves a request: small policies behind one method, found by name."""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from metropolis.registry import lookup

if TYPE_CHECKING:
    from metropolis.llm.serving.job import Job
    from metropolis.llm.serving.replica import Replica


@mypyc_attr(allow_interpreted_subclasses=True)
class Router(ABC):
    """Picks the replica for each request. A base class rather than a Protocol: it runs on every request, and
    compiled code calls a class's methods natively, a protocol's through Python (metropolis/compiled.py)."""

    @abstractmethod
    def choose(self, job: Job, replicas: Sequence[Replica]) -> int: ...


class RoundRobin(Router):
    """Replicas in turn, whatever their load."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, job: Job, replicas: Sequence[Replica]) -> int:
        i = self._next % len(replicas)
        self._next = i + 1
        return i


class LeastLoaded(Router):
    """Fewest outstanding tokens (queued prompts and outputs, decodes left); ties to the lowest index."""

    def choose(self, job: Job, replicas: Sequence[Replica]) -> int:
        best, least = 0, replicas[0].outstanding_tokens
        for i in range(1, len(replicas)):
            load = replicas[i].outstanding_tokens
            if load < least:  # strictly: the first of the least loaded
                best, least = i, load
        return best


class AgentAffinity(Router):
    """Always the same replica for an agent (a stable hash of its name), so its KV prefix can stay there."""

    def choose(self, job: Job, replicas: Sequence[Replica]) -> int:
        return zlib.crc32(job.agent.encode()) % len(replicas)


ROUTERS: dict[str, Callable[[], Router]] = {
    "affinity": AgentAffinity,
    "least_loaded": LeastLoaded,
    "round_robin": RoundRobin,
}


def make_router(name: str) -> Router:
    """The router called `name` (the one place router names are checked)."""
    return lookup(ROUTERS, name, "routing policy")()
