"""The Ray runtime: the controller is this process, which alone decides and commits (it keeps the simulation,
its dispatcher and the policy); Ray workers run the units. It is the asyncio runtime's loop (runtime/driver.py)
with one change: a unit's coroutine sends the unit to a worker and waits for its outcome instead of running the
steps here. Virtual time stays single-process: this runtime is for real endpoints and CPU-heavy agents.

Faults. A worker that dies (ray.kill, SIGKILL of its process, its node lost) fails its units: each is dispatched
again, to the dead worker's replacement, with the answers its lost dispatch had received (the journal inbox), so
no LLM call is made twice. A worker that does not answer within `unit_timeout` (stopped, partitioned) is given up
on: its unit is dispatched elsewhere and every dispatch carries a fence, so its late outcome is refused when it
comes (`refused` counts them), after which the worker takes units again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ray.exceptions import RayActorError, RayTaskError

from metropolis.engine.simulation import Simulation, StepResult
from metropolis.llm.journal import Journal
from metropolis.runtime.driver import Progress
from metropolis.runtime.ray.batches import Batches
from metropolis.runtime.ray.messages import Answers, ShippedContext, UnitOrder, UnitOutcome
from metropolis.runtime.ray.pool import WorkerPool
from metropolis.runtime.realtime import AsyncioRuntime
from metropolis.runtime.report import RunReport
from metropolis.scheduling import WorkUnit

FORGET_BATCH = 256
OnDispatch = Callable[[int, int], None]  # (dispatches so far, the worker) -> None: fault injection in tests


class RayRuntime(AsyncioRuntime):
    """Units run on `pool`'s workers; `journal` (the run's) records every answered call when its unit commits."""

    runtime_name = "ray"

    def __init__(
        self,
        sim: Simulation,
        pool: WorkerPool,
        journal: Journal | None = None,
        max_units: int | None = None,
        unit_timeout: float | None = None,
    ) -> None:
        if sim.speculation is not None:
            # Its bets are held, checked and undone around steps run in this process (engine/speculation.py);
            # a worker's step would commit unchecked, and a run apart would not see its touches.
            raise ValueError("the speculative policy runs in this process only: use the asyncio or virtual runtime")
        super().__init__(sim, None, max_units)
        self.pool = pool
        self.journal = journal
        self.unit_timeout = unit_timeout
        self.on_dispatch: OnDispatch | None = None
        self.late_grace = 0.0  # seconds the run's end waits for the late outcomes of given-up dispatches
        self.dispatches = 0
        self.redispatched = 0  # dispatches made again after a worker died or was given up on
        self.refused = 0  # late outcomes of dispatches given up on
        self.reused = 0  # answers a lost dispatch had received, handed to the unit's next dispatch
        self.controller_seconds = 0.0  # dispatch to commit, less the worker's own time: the controller's overhead
        self._calls: list[tuple[float, float]] = []  # the workers' LLM calls (start, end), on this host's clock
        self._fences = itertools.count(1)
        self._latest: dict[tuple[int, int], int] = {}  # (first member, step) -> the unit's latest fence
        self._late: set[asyncio.Task[None]] = set()
        self._forget: list[tuple[list[int], int]] = []  # committed units' answers the inbox may drop
        self.batches = Batches()
        self._given_up: dict[int, int] = {}  # worker -> its dispatches given up on and not answered yet
        self._revived = asyncio.Event()  # a worker given up on is live again
        self.revival_wait = max(60.0, 10 * (unit_timeout or 0.0))  # seconds to wait when every worker is out

    async def run(self, progress: Progress | None = None) -> RunReport:
        try:
            return await super().run(progress)
        finally:
            if self._late and self.late_grace > 0:  # let given-up workers answer (and be refused), for a while
                await asyncio.wait(set(self._late), timeout=self.late_grace)
            for task in list(self._late):
                task.cancel()

    def _execute(self, unit: WorkUnit) -> Coroutine[Any, Any, list[StepResult]]:
        return self._remote(unit)

    async def _remote(self, unit: WorkUnit) -> list[StepResult]:
        began = time.perf_counter()
        answers: Answers = {}
        while True:
            await self._a_worker_is_live()
            worker = self.pool.placement.pick(unit.members)
            order = self._order(unit, worker, answers)
            handle = self.pool.handles[worker]
            self.dispatches += 1
            if self.on_dispatch is not None:
                self.on_dispatch(self.dispatches, worker)
            self.pool.placement.running[worker] += 1
            try:
                outcome = await self._reply(worker, handle, unit, order)
            finally:
                self.pool.placement.running[worker] -= 1
            if outcome is not None:
                results = self._accept(unit, worker, outcome)
                self.controller_seconds += time.perf_counter() - began - outcome.worker_seconds
                return results
            self.redispatched += 1
            answers = await self.pool.inbox.answers.remote(list(self._touched(unit)), unit.step)
            self.reused += len(answers)

    async def _reply(self, worker: int, handle: Any, unit: WorkUnit, order: UnitOrder) -> UnitOutcome | None:
        """The dispatch's outcome; None when the worker died (a fresh one is started) or missed the deadline."""
        try:
            if self.unit_timeout is None:
                return await self._ask(handle, order)
            reply = asyncio.ensure_future(self._ask(handle, order))
            done, _ = await asyncio.wait({reply}, timeout=self.unit_timeout)
            if not done:  # given up on: the unit goes elsewhere, and this dispatch may still answer (refused)
                self._give_up(worker, unit, reply)
                return None
            return reply.result()
        except RayActorError:  # the worker died: a fresh one takes its place
            self.pool.replace(worker, handle)
            self._revived.set()
            return None

    async def _ask(self, handle: Any, order: UnitOrder) -> UnitOutcome:
        try:
            outcome = await self.batches.send(handle, order)
        except RayTaskError as error:  # the agent's own error, not the worker's death: it fails the run
            cause = error.cause
            raise (cause if isinstance(cause, BaseException) else error.as_instanceof_cause()) from None
        return outcome

    async def _a_worker_is_live(self) -> None:
        """Wait while every worker is given up on (all stopped, or all slower than the deadline) for one to
        answer again, as long as `revival_wait`; then the run fails, saying so."""
        live = self.pool.placement.live
        if any(live):
            return
        try:
            async with asyncio.timeout(self.revival_wait):
                while not any(live):
                    self._revived.clear()
                    await self._revived.wait()
        except TimeoutError:
            pass  # `pick` says it in one line

    def _touched(self, unit: WorkUnit) -> set[int]:
        return set(unit.members) | set(unit.group)

    def _order(self, unit: WorkUnit, worker: int, answers: Answers) -> UnitOrder:
        sim, pool = self.sim, self.pool
        fence = next(self._fences)
        self._latest[(unit.members[0], unit.step)] = fence
        states = {a: sim.store.at(a, unit.step) for a in unit.members}
        seen = {}
        if not sim.scheduler.replays_recorded:
            radius = sim.world.perception_radius
            seen = {a: sim.neighbors_at(a, unit.step, states[a].pos, radius) for a in unit.members}
        touched = self._touched(unit)
        held = pool.held[worker]
        versions = {a: pool.version[a] for a in touched}
        private = {a: sim.agents[a].state_dict() for a in touched if held.get(a) != versions[a]}
        return UnitOrder(unit, fence, states, seen, versions, private, answers)

    def _accept(self, unit: WorkUnit, worker: int, outcome: UnitOutcome) -> list[StepResult]:
        """The outcome of the unit's latest dispatch: its private states become the committed ones here, its
        answers go to the run's journal, its plans are published; the driver then commits the steps."""
        sim, pool = self.sim, self.pool
        if self._latest.pop((unit.members[0], unit.step)) != outcome.fence:
            raise RuntimeError(f"unit {unit} got the outcome of dispatch {outcome.fence}, not its latest")
        for agent, state in outcome.private.items():
            sim.agents[agent].load_state_dict(state)
            pool.version[agent] += 1
            pool.held[worker][agent] = pool.version[agent]
        if outcome.answered:
            self._journal(unit, outcome.answered)
        if self.journal is not None:
            self.journal.hits += outcome.hits
        for agent, plan in outcome.plans:
            sim.publish_plan(agent, plan)
        sim.member_stats.add(outcome.stats)
        self._calls += [(call.start, call.end) for m in outcome.members for call in m.calls]
        return [(ShippedContext(sim, unit, m), m.start, m.end) for m in outcome.members]

    def _journal(self, unit: WorkUnit, answered: Answers) -> None:
        journal = self.journal
        if journal is not None:
            for key, answer in answered.items():
                journal.store.journal_put(key, answer)
            journal.misses += len(answered)
        self._forget.append((list(self._touched(unit)), unit.step))
        if len(self._forget) >= FORGET_BATCH:  # the inbox is read only on a redispatch: tell it in batches
            self.pool.inbox.forget.remote(self._forget)
            self._forget = []

    def _give_up(self, worker: int, unit: WorkUnit, reply: asyncio.Future[UnitOutcome]) -> None:
        """Worker `worker` missed the unit's deadline: no units for it until every dispatch given up on there
        has answered (one still running would change agents a new unit there uses); what it holds is not
        trusted; when its outcome comes, it is refused (a later dispatch of the unit holds the fence)."""
        self.pool.placement.live[worker] = False
        self.pool.forget_all(worker)
        self._given_up[worker] = self._given_up.get(worker, 0) + 1
        handle = self.pool.handles[worker]

        async def late() -> None:
            try:
                outcome = await reply
            except Exception:
                return  # it died meanwhile: its replacement is started when the next unit finds out
            finally:
                self._given_up[worker] -= 1
            if self._latest.get((unit.members[0], unit.step)) != outcome.fence:
                self.refused += 1
            if not self._given_up[worker] and self.pool.handles[worker] is handle:
                self.pool.placement.live[worker] = True
                self._revived.set()

        task = asyncio.ensure_future(late())
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    def report(self) -> RunReport:
        report = super().report()
        busy = sum(end_ - start for start, end_ in self._calls)
        return dataclasses.replace(
            report,
            mean_llm_in_flight=busy / report.duration if report.duration > 0 else 0.0,
            peak_llm_in_flight=peak(self._calls),
        )

    def overhead_ms(self) -> float:
        """The controller's own time per unit, in ms: dispatch to commit, less the time the worker ran it."""
        return 1000 * self.controller_seconds / max(1, self.sim.units_dispatched)


def peak(spans: list[tuple[float, float]]) -> int:
    """The most spans open at once."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, delta in events:
        now += delta
        most = max(most, now)
    return most
