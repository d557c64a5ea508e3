"""The durable store of one run, as an interface: a journal of answered LLM calls, checkpoints, a commit log.

Kept narrow on purpose, so that another store (Redis, for runs spread over machines) implements the same five
verbs. Values are plain JSON-able dicts, and a checkpoint's agent states are bytes the caller made (pickle);
the store never interprets either.

Durability contract:
- `journal_put` is durable against the death of the process once it returns (kill -9 loses nothing written);
  `sync()` makes every write so far durable against the machine's death too (fsync).
- `save_checkpoint` is atomic and durable against the death of the process when it returns: a reader sees the
  whole checkpoint or the previous one, never part of it; after a `sync()` it survives a machine crash too.
- `sync()` may be called from another thread than the other verbs (it only flushes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class StaleEpoch(RuntimeError):
    """A store refused a write from a controller that was replaced: another one resumed the run since (a shared
    store fences each controller by an epoch; see store.redis)."""


@dataclass(frozen=True, slots=True)
class JournalKey:
    """One LLM call: whose (the agent the call is for), at which step, its index among that agent's calls of
    that step, and a hash of what was asked (so a run that asks something else is caught, not answered)."""

    agent: int
    step: int
    index: int
    prompt_hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A consistent cut: `number` counts checkpoints from 1; `cut` is JSON-able (GVT, table, trace parts...);
    `states` maps an agent id to its pickled `state_dict()` and the step it had completed."""

    number: int
    cut: dict[str, Any]
    states: dict[int, tuple[int, bytes]]


class RunStore(Protocol):
    """What checkpointing and the LLM journal need of a store; see the module docstring for durability."""

    def journal_put(self, key: JournalKey, answer: dict[str, Any]) -> None:
        """Record the answer of a call, durably once this returns (see `sync`)."""
        ...

    def journal_get(self, key: JournalKey) -> dict[str, Any] | None:
        """The recorded answer of a call, None if it was never answered; a ValueError if the call at this
        (agent, step, index) asked something else (the run diverged from the journaled one)."""
        ...

    def journal_size(self) -> int: ...

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Save atomically; also appends a "checkpoint" entry to the commit log."""
        ...

    def latest_checkpoint(self) -> Checkpoint | None: ...

    def log(self, event: str, info: dict[str, Any]) -> None:
        """Append to the commit log (runs started, resumed, finished): the run's history of itself."""
        ...

    def history(self) -> list[tuple[str, dict[str, Any]]]: ...

    def sync(self) -> None:
        """Make every write so far durable against a machine crash (fsync)."""
        ...

    def close(self) -> None: ...
