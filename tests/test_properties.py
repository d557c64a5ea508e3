"""Correctness contract: every scheduler reproduces the `serial` simulation exactly, on random worlds."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metropolis.agents import WalkerConfig
from tests.scenarios import outcome, run_shuffled, walker_sim

worlds = st.fixed_dictionaries(
    {
        "n": st.integers(2, 60),
        "seed": st.integers(0, 2**16),
        "size": st.integers(6, 40),
        "steps": st.integers(1, 16),
        "R": st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 6.0]),
        "V": st.sampled_from([1.0, 1.5, 2.0]),
        "walls": st.sampled_from([0.0, 0.1, 0.3]),
        "config": st.builds(
            WalkerConfig,
            move_prob=st.floats(0, 1),
            talk_prob=st.floats(0, 1),
            call_prob=st.just(0.0),
            rest_prob=st.sampled_from([0.0, 0.0, 0.2, 0.5]),  # resting walkers promise to stay (`ctx.stay`)
            rest_steps=st.integers(1, 8),
        ),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds, order_seed=st.integers(0, 2**16))
def test_every_scheduler_reproduces_serial(world: dict, order_seed: int) -> None:
    serial = walker_sim(scheduler="serial", **world)
    run_shuffled(serial, random.Random(order_seed))
    expected = outcome(serial)
    for name, priority in (("lockstep", True), ("metropolis", True), ("metropolis", False)):
        sim = walker_sim(scheduler=name, priority=priority, **world)
        run_shuffled(sim, random.Random(order_seed))
        assert outcome(sim) == expected, f"{name} (priority={priority}) diverged from serial"
        assert sim.agent_steps == len(sim.agents) * world["steps"]
