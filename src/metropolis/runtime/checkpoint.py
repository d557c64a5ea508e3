"""Checkpoints: at every interval of GVT, a consistent cut of the run saved to its store, durably.

What a cut holds: the GVT and every agent's step (the agent table), the agent-steps committed, the trace parts
sealed so far (fsynced), and every agent's `state_dict()`. An agent in a running unit is mid-step, so its state
is no cut: once a checkpoint is due, each agent's state is taken when it is not running, or as its step is
reported (its step is then whole), and the checkpoint is saved when every agent's is in. Each agent's state is
then as of its own step; agents write into each other only within a unit, at one step, so these states form a
consistent cut. The store's journal is committed with it. There is no random generator state to save: every
step draws from `ctx.rng`, seeded by (run seed, agent, step); an agent that keeps a generator of its own must
return its state in `state_dict()`.

Durability and cost: a checkpoint is taken on the run's thread (the states, the cut) and saved in two steps
off it: one I/O thread writes and renames its trace parts into place, and once they are (checked at the next
step) the store commits it, which then survives kill -9. The fsyncs that make it survive a machine crash too
(the parts, their folders, then the store's log, in that order) follow on the I/O thread. A kill loses at most
the interval being run and the one just taken; encoding Parquet, renames and fsyncs release the GIL, so the run
goes on meanwhile. Only the agents whose pickled state changed since the last checkpoint are saved
(`RunStore.save_increment`); the store keeps every other agent's newest. All this keeps checkpoints within the
5% of wall time they may take (`metropolis bench checkpoint`).

How a run resumes from it, and why that is exact. A cut of a virtual-time run would also need the serving
model (requests queued, in prefill, decoding, their KV blocks) and the kernel's heap, which holds the suspended
coroutines of the agent steps in flight; an instant with no request in flight does not come in general (a
24-hour run averages 8 in flight), and coroutines cannot be saved. So a resume re-executes the run from its
start, deterministically: every agent step is seeded by (seed, agent, step), the policy and the table are
rebuilt by the same dispatches, the serving model sees the same requests at the same virtual instants, and
every LLM answer comes from the journal (no call is made twice; in virtual time the answers are recomputed and
checked against it). Re-executing costs CPU only, never an LLM call. The trace records of steps the cut's
parts already hold are dropped (`TraceRecorder(parts=...)`), and when the re-execution reaches the cut, each
agent's `state_dict()` is checked against the saved one (`verified`): an agent whose state depends on anything
but its seed and its answers (a global random generator, the wall clock) is caught there, not later.
"""

from __future__ import annotations

import pickle
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.interrupts import signals_deferred
from metropolis.scheduling.table import Status
from metropolis.store.base import Checkpoint, RunStore
from metropolis.trace.parts import fsync

DEFAULT_MINUTES = 5.0  # simulated minutes between checkpoints: 30 steps of 10 s


class Sealer(Protocol):
    """What writes the trace: `checkpoint()` seals what it has and names its parts per table."""

    def checkpoint(self) -> dict[str, list[str]]: ...

    def write_behind(self, executor: Executor) -> None: ...

    def drain(self) -> None: ...

    def unsynced(self) -> list[Path]: ...


def _nothing() -> None:
    """A marker on the I/O thread: done once everything submitted before it is."""


def _fsync_all(paths: list[Path], store: RunStore) -> None:
    for path in paths:
        fsync(path)
    store.sync()


class StateMismatch(RuntimeError):
    """A resumed run reached the checkpoint's cut with an agent whose state differs from the saved one."""


def interval_steps(minutes: float, seconds_per_step: float) -> int:
    """Simulated minutes between checkpoints, as steps (at least one); 0 minutes means no checkpoints."""
    if minutes < 0:
        raise ValueError(f"the checkpoint interval must be >= 0 simulated minutes, got {minutes}")
    return 0 if minutes == 0 else max(1, round(minutes * 60 / seconds_per_step))


class Checkpointer:
    """A listener (attach it after the trace recorder): saves a cut whenever GVT passes the next multiple of
    `every` steps. `resume`: the checkpoint a resumed run starts from; its agent states are checked as the
    re-execution reaches them, and no checkpoint is saved before its GVT is passed."""

    def __init__(
        self,
        sim: Simulation,
        store: RunStore,
        every: int,
        trace: Sealer | None = None,
        resume: Checkpoint | None = None,
    ) -> None:
        if every < 0:
            raise ValueError(f"every must be >= 0 steps (0: no checkpoints), got {every}")
        self.sim = sim
        self.store = store
        self.every = every
        self.trace = trace
        self.number = 0 if resume is None else resume.number
        start = 0 if resume is None else int(resume.cut["gvt"])
        self.next_gvt = self._after(start)
        self._expect = {} if resume is None else {a: s for a, s in resume.states.items() if s[0] > 0}
        self.verified = 0
        self.seconds = 0.0  # wall time spent saving, for the overhead figure
        self._heard = sim.agent_steps  # agent-steps committed when this last heard of one (`on_step`)
        self._taken: dict[int, tuple[int, bytes]] | None = None  # a due checkpoint's states so far
        self._saved = {} if resume is None else {a: s for a, (_, s) in resume.states.items()}  # newest in the store
        self._io = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-io")  # parts, then fsyncs, in order
        self._unsaved: tuple[Checkpoint, Future[None]] | None = None  # sealed; saved once its parts are in place
        self._synced: Future[None] | None = None
        if trace is not None and every:
            trace.write_behind(self._io)

    def _after(self, gvt: int) -> int:
        return (gvt // self.every + 1) * self.every if self.every else self.sim.until + 1

    def on_call(self, record: CallRecord) -> None:
        pass

    def on_step(self, record: StepRecord) -> None:
        # The steps the trace has heard of (it listens before this): a cut taken on a signal, which may land
        # between a commit and its listeners, never claims a step its parts do not hold.
        self._heard = self.sim.agent_steps
        if self._unsaved is not None and self._unsaved[1].done():
            self._store()
        if self._expect:
            self._check(record)
        if self._taken is None and self.sim.table.gvt() >= self.next_gvt:
            self._taken = self._idle_states()
        if self._taken is not None:
            if record.agent not in self._taken:
                self._taken[record.agent] = (record.step + 1, self._state(record.agent))
            if len(self._taken) == len(self.sim.agents):
                self.save()

    def save(self) -> Checkpoint:
        """Take a cut now, with the states taken so far (also at any instant: on Ctrl-C, the run saves one
        before it stops, without the states of agents mid-step). Its trace parts are written on the I/O
        thread; the store saves the checkpoint once they are in place (`_store`), never before."""
        with signals_deferred():  # a cut and its parts, whole: a signal waits until the checkpoint is taken
            return self._save()

    def _save(self) -> Checkpoint:
        t0 = time.perf_counter()
        table = self.sim.table
        states = self._taken if self._taken is not None else self._idle_states()
        self._taken = None
        if self._unsaved is not None:  # the previous one's parts are not written yet (rare: an interval passed)
            self._store()
        parts = self.trace.checkpoint() if self.trace is not None else {}
        gvt = table.gvt()
        self.number += 1
        cut = {"gvt": gvt, "steps": list(table.step), "agent_steps": self._heard, "parts": parts}
        saved = self._saved
        changed = {a: (step, state) for a, (step, state) in states.items() if saved.get(a) != state}
        saved.update((a, state) for a, (_, state) in changed.items())
        checkpoint = Checkpoint(self.number, cut, changed)
        self._unsaved = (checkpoint, self._io.submit(_nothing))  # done when the parts submitted before it are
        self.next_gvt = self._after(gvt)
        self.seconds += time.perf_counter() - t0
        return checkpoint

    def _store(self) -> None:
        """Save the sealed checkpoint (waiting for its parts if need be), then fsync off the run's thread. A
        signal waits: taken out of `_unsaved`, the checkpoint is saved whole (its agents' states are already
        counted as saved, `_saved`), never dropped halfway."""
        with signals_deferred():
            self._store_now()

    def _store_now(self) -> None:
        assert self._unsaved is not None
        t0 = time.perf_counter()
        (checkpoint, written), self._unsaved = self._unsaved, None
        written.result()
        if self.trace is not None:
            self.trace.drain()  # raises what writing the parts raised
        self.store.save_increment(checkpoint)  # the agents whose state is as saved keep their row
        unsynced = self.trace.unsynced() if self.trace is not None else []
        self._synced = self._io.submit(_fsync_all, unsynced, self.store)
        self.seconds += time.perf_counter() - t0

    def wait(self) -> None:
        """Wait until the last checkpoint is saved and on the disk (its fsyncs are done); raises what they
        raised."""
        if self._unsaved is not None:
            self._store()
        if self._synced is not None:
            synced, self._synced = self._synced, None
            synced.result()

    def close(self) -> None:
        """Wait for the last checkpoint and stop the thread that writes and fsyncs."""
        try:
            self.wait()
        finally:
            self._io.shutdown()

    def _state(self, agent: int) -> bytes:
        t0 = time.perf_counter()
        state = pickle.dumps(self.sim.agents[agent].state_dict(), protocol=pickle.HIGHEST_PROTOCOL)
        self.seconds += time.perf_counter() - t0
        return state

    def _idle_states(self) -> dict[int, tuple[int, bytes]]:
        table = self.sim.table
        return {
            i: (table.step[i], self._state(i))
            for i in range(len(self.sim.agents))
            if table.status[i] is not Status.RUNNING
        }

    def _check(self, record: StepRecord) -> None:
        expected = self._expect.get(record.agent)
        if expected is None or expected[0] != record.step + 1:
            return
        del self._expect[record.agent]
        agent = self.sim.agents[record.agent]
        if pickle.loads(expected[1]) != agent.state_dict():
            raise StateMismatch(
                f"resume: agent {agent.name} after step {record.step} is not in the state the checkpoint saved; "
                "its steps depend on something besides the run seed and the LLM answers (use ctx.rng)"
            )
        self.verified += 1
