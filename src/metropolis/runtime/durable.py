"""What makes a run durable, set up in one place (for `run`, `resume` and the checkpoint bench): the store, the LLM
journal, the trace recorder writing part files, and the checkpointer that seals them at every interval."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from metropolis.engine import Simulation
from metropolis.engine.records import CallRecord, StepRecord
from metropolis.llm.journal import Journal
from metropolis.runtime.checkpoint import Checkpointer, interval_steps
from metropolis.store import Checkpoint, RunStore, StaleEpoch
from metropolis.store.choice import open_store
from metropolis.trace import TraceRecorder


@runtime_checkable
class PublicVersions(Protocol):
    """A store shared by controllers: it keeps the committed public state versions (workers elsewhere read
    them), and `fence()` raises StaleEpoch once another controller took the run over."""

    def commit_states(self, states: Iterable[tuple[int, int, bytes]]) -> None: ...

    def fence(self) -> None: ...


@dataclass(slots=True)
class FencedSealer:
    """The trace recorder as the checkpointer sees it, checking the store's fence before it seals parts: a
    replaced controller is stopped before it writes into the run folder that is now another's."""

    recorder: TraceRecorder
    store: PublicVersions

    def checkpoint(self) -> dict[str, list[str]]:
        self.store.fence()
        return self.recorder.checkpoint()

    def unsynced(self) -> list[Path]:
        return self.recorder.unsynced()

    def write_behind(self, executor: Executor) -> None:
        self.recorder.write_behind(executor)

    def drain(self) -> None:
        self.recorder.drain()


class PublicStates:
    """A listener: every committed step's public state (what others may observe of the agent) goes to the
    store, pickled; the store writes it with its next commit."""

    def __init__(self, store: PublicVersions) -> None:
        self.store = store

    def on_call(self, record: CallRecord) -> None:
        pass

    def on_step(self, record: StepRecord) -> None:
        state = pickle.dumps(record.state, protocol=pickle.HIGHEST_PROTOCOL)
        self.store.commit_states([(record.agent, record.step + 1, state)])


@dataclass(slots=True)
class Durable:
    store: RunStore
    journal: Journal
    recorder: TraceRecorder
    checkpointer: Checkpointer
    resumed_from: Checkpoint | None
    journaled: int  # answers in the journal when the run (re)started

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, sim: Simulation, path: Path, virtual: bool, minutes: float, resume: bool, store: str = "", key: str = ""
    ) -> Iterator[Durable]:
        """In virtual time journal writes are committed at each checkpoint, not one by one: the answers there
        are recomputed (and checked) on a resume, so losing the tail costs nothing; a live answer costs a
        real call, so it is committed as it arrives. `store` and `key`: which store (`--store`, see
        `store.choice`) and the run's keys in a shared one."""
        with open_store(store, path, key, autocommit=not virtual, resume=resume) as opened:
            yield from cls._opened(sim, opened, path, minutes, resume)

    @classmethod
    def _opened(cls, sim: Simulation, store: RunStore, path: Path, minutes: float, resume: bool) -> Iterator[Durable]:
        checkpoint = store.latest_checkpoint() if resume else None
        parts = None if not resume else ({} if checkpoint is None else checkpoint.cut["parts"])
        recorder = TraceRecorder.for_simulation(sim, path / "trace", parts=parts)
        every = interval_steps(minutes, sim.world.seconds_per_step)
        shared = store if isinstance(store, PublicVersions) else None
        sealer = recorder if shared is None else FencedSealer(recorder, shared)
        checkpointer = Checkpointer(sim, store, every, sealer, resume=checkpoint)
        sim.listeners += [recorder, checkpointer]
        if shared is not None:
            sim.listeners.append(PublicStates(shared))
        journaled = store.journal_size()
        store.log("resumed" if resume else "started", {"checkpoint": checkpointer.number, "journal": journaled})
        try:
            yield cls(store, Journal(store), recorder, checkpointer, checkpoint, journaled)
        except BaseException:
            # What stopped the run is the error to report (a stale epoch, a signal), not a late trace write of a
            # controller whose run folder another one has since finished.
            with contextlib.suppress(Exception):
                checkpointer.close()
            raise
        else:
            checkpointer.close()

    def checkpoint_number(self) -> int:
        return 0 if self.resumed_from is None else self.resumed_from.number

    def resuming(self) -> str:
        if self.resumed_from is None:
            return f"resuming from the start (no checkpoint was saved); the journal holds {self.journaled:,} answers"
        cut = self.resumed_from.cut
        return (
            f"resuming from checkpoint {self.resumed_from.number} (GVT step {cut['gvt']}, "
            f"{cut['agent_steps']:,} agent-steps); the journal holds {self.journaled:,} answers"
        )

    def fence(self) -> None:
        """Raise StaleEpoch if a shared store says another controller took the run over (then nothing here may
        write to the run's folder or store); a store that cannot answer is left to what follows to meet."""
        if not isinstance(self.store, PublicVersions):
            return
        try:
            self.store.fence()
        except StaleEpoch:
            raise
        except Exception:
            pass

    def stop(self) -> None:
        """The run stopped early (Ctrl-C, SIGTERM, a failure): save a last checkpoint, so that `resume` loses
        nothing; a failure here must not hide the one that stopped the run."""
        with contextlib.suppress(Exception):
            self.checkpointer.save()
            self.checkpointer.wait()
            self.store.log("stopped", {"checkpoint": self.checkpointer.number})

    def finish(self) -> None:
        """The run is done: the trace's parts become its files, and the store says so (a shared store is asked
        first whether this controller still holds the run)."""
        if isinstance(self.store, PublicVersions):
            self.store.fence()  # first: a replaced controller's trace folder may be gone (the other joined it)
        self.checkpointer.wait()
        self.recorder.close()
        journal = self.journal
        self.store.log("finished", {"journal_hits": journal.hits, "journal_misses": journal.misses})
        self.store.sync()

    def summary(self) -> str:
        j = self.journal
        return (
            f"journal          {j.hits:,} answers from the journal, {j.misses:,} new; "
            f"{self.checkpointer.number} checkpoints ({self.checkpointer.seconds:.2f} s)"
        )
