"""The player keeps the correctness contract: with a scripted (or replayed) input stream, every policy gives the
`serial` run, on random worlds and adversarial completion orders."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metropolis.agents import RandomWalker, WalkerConfig
from metropolis.agents.player import PlayerAgent
from metropolis.agents.player_input import Command, GoTo, Move, PlayerInput, Say
from metropolis.engine import Simulation
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.world import World
from tests.scenarios import finish, outcome, walled_map


class Instant:
    """Answers at once, never suspending: so units can be completed in any order by a plain driver."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return LLMResponse(text=f"{request.agent} at {request.step}", prompt_tokens=1, completion_tokens=1)


def player_sim(
    scheduler: str, priority: bool, world: dict[str, Any], script: dict[int, tuple[Command, ...]]
) -> Simulation:
    rng = random.Random(world["seed"])
    tilemap = walled_map(world["size"], world["size"], world["walls"], rng)
    tiles = tilemap.walkable_tiles()
    town = World(tilemap=tilemap, perception_radius=world["R"], max_velocity=world["V"])
    config = WalkerConfig(talk_prob=0.3, call_prob=0.2)
    walkers = [RandomWalker(f"a{i}", rng.choice(tiles), config) for i in range(world["n"])]
    player = PlayerAgent("you", rng.choice(tiles), PlayerInput(script))
    return Simulation(town, [*walkers, player], until=world["steps"], scheduler=scheduler, priority=priority,
                      seed=world["seed"], check_causality=True, keep_history=True)  # fmt: skip


def run_shuffled(sim: Simulation, rng: random.Random) -> None:
    llm, in_flight = Instant(), []
    while not sim.done():
        while (unit := sim.pop_ready()) is not None:
            in_flight.append(unit)
        assert in_flight, "deadlock: nothing ready or in flight"
        unit = in_flight.pop(rng.randrange(len(in_flight)))
        sim.commit(unit, finish(sim.execute(unit, llm, lambda: 0.0)))


commands = st.one_of(
    st.builds(Move, st.integers(-1, 1), st.integers(-1, 1)),
    st.builds(GoTo, st.integers(0, 24), st.integers(0, 24)),
    st.builds(Say, st.just("hello"), st.sampled_from([None, "a0", "a1", "nobody"])),
)
scripts = st.dictionaries(st.integers(0, 11), st.lists(commands, max_size=3).map(tuple), max_size=12)
worlds = st.fixed_dictionaries(
    {
        "n": st.integers(1, 30),
        "seed": st.integers(0, 2**16),
        "size": st.integers(6, 24),
        "steps": st.integers(1, 12),
        "R": st.sampled_from([1.0, 2.0, 4.0]),
        "V": st.sampled_from([1.0, 2.0]),
        "walls": st.sampled_from([0.0, 0.2]),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds, script=scripts, order_seed=st.integers(0, 2**16))
def test_a_scripted_player_gives_the_serial_run_under_every_policy(
    world: dict[str, Any], script: dict[int, tuple[Command, ...]], order_seed: int
) -> None:
    serial = player_sim("serial", True, world, script)
    run_shuffled(serial, random.Random(order_seed))
    expected = outcome(serial)
    for name, priority in (("lockstep", True), ("metropolis", True), ("metropolis", False)):
        sim = player_sim(name, priority, world, script)
        run_shuffled(sim, random.Random(order_seed))
        assert outcome(sim) == expected, f"{name} (priority={priority}) diverged from serial"
