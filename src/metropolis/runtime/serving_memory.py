"""Wiring agent-aware serving memory to a run: the engine core knows nothing of it, so whoever turns it on (the
`run` command, the memory benchmarks) attaches these two listeners."""

from __future__ import annotations

from collections.abc import Callable

from metropolis.engine.records import CallRecord, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.scheduling.invocation import InvocationDistance


def track_invocation_distance(sim: Simulation, *, spatial: bool = False) -> InvocationDistance:
    """Every agent's invocation distance, kept current from the policy's waits and the plans agents publish."""
    distance = InvocationDistance(sim.world, sim.scheduler, spatial=spatial)
    sim.plan_listeners.append(distance.on_plan)
    return distance


class PrefetchOnCommit:
    """Calls `prefetch` whenever agents commit a step: who comes next may have changed."""

    def __init__(self, prefetch: Callable[[], object]) -> None:
        self.prefetch = prefetch

    def on_step(self, record: StepRecord) -> None:
        self.prefetch()

    def on_call(self, record: CallRecord) -> None:
        """Calls change no distance."""
