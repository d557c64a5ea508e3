"""The player: a scripted person in virtual time, its inputs recorded and replayed, the latency class honoured."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest

from metropolis.agents import RandomWalker, WalkerConfig
from metropolis.agents.player import PlayerAgent
from metropolis.agents.player_input import GoTo, Move, PlayerInput, Say, make_pace
from metropolis.agents.player_log import PlayerLog, parse_script, read_script, script_lines
from metropolis.engine import Simulation
from metropolis.kernel import Environment
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.runtime import AsyncioRuntime, VirtualRuntime
from metropolis.runtime.horizon import PlayerHorizon
from metropolis.world import World
from metropolis.world.tilemap import TileMap

SCRIPT = {0: (Say("hello"),), 1: (Move(1, 0),), 2: (Move(1, 0), Say("nice day")), 4: (GoTo(2, 2),), 9: (Say("bye"),)}


def town(
    scheduler: str, inputs: PlayerInput, *, n: int = 12, size: int = 12, steps: int = 14, seed: int = 1
) -> Simulation:
    rng = random.Random(seed)
    world = World(tilemap=TileMap.open(size, size), perception_radius=3.0, max_velocity=1.0)
    config = WalkerConfig(call_prob=0.3, talk_prob=0.2)
    walkers = [RandomWalker(f"w{i}", (rng.randrange(size), rng.randrange(size)), config) for i in range(n)]
    player = PlayerAgent("you", (size // 2, size // 2), inputs)
    return Simulation(world, [player, *walkers], until=steps, scheduler=scheduler, seed=seed, keep_history=True,
                      check_causality=True)  # fmt: skip


def run_virtual(sim: Simulation, *, horizon: bool = True, max_running: int = 256) -> tuple[VirtualLLM, Cluster]:
    env = Environment()
    cluster = Cluster(env, preset("l4-llama3-8b").replace(max_running=max_running))
    llm = VirtualLLM(env, cluster)
    player = sim.agents[0]
    assert isinstance(player, PlayerAgent)
    VirtualRuntime(sim, env, PlayerHorizon(llm, sim, player) if horizon else llm).run()
    return llm, cluster


def outcome(sim: Simulation) -> tuple[list[object], list[object]]:
    return [sim.history(i) for i in range(len(sim.agents))], [a.snapshot() for a in sim.agents]


def test_scripted_player_is_the_same_run_under_every_policy() -> None:
    serial = town("serial", PlayerInput(SCRIPT))
    run_virtual(serial)
    expected = outcome(serial)
    player = serial.agents[0]
    assert isinstance(player, PlayerAgent) and player.talked  # it met somebody and talked
    for name in ("lockstep", "metropolis"):
        sim = town(name, PlayerInput(SCRIPT))
        run_virtual(sim)
        assert outcome(sim) == expected, name


def test_pushed_inputs_are_recorded_and_replay_to_the_same_run(tmp_path: Path) -> None:
    inputs = PlayerInput()
    live = town("metropolis", inputs)
    log = PlayerLog(live.agents[0], tmp_path / "player.jsonl")  # type: ignore[arg-type]
    live.listeners.append(log)
    pushes = iter([Move(0, 1), Say("hi"), Move(-1, 0), Say("how are you?"), GoTo(0, 0)])

    class Pusher:  # input arriving at moments the run's timing decides, as from a keyboard
        def on_step(self, record: object) -> None:
            if getattr(record, "agent", None) == 3 and (command := next(pushes, None)) is not None:
                inputs.push(command)

        def on_call(self, record: object) -> None: ...

    live.listeners.append(Pusher())
    run_virtual(live)
    log.close()
    assert sum(len(c) for c in log.script.values()) >= 4
    script = read_script(tmp_path)
    assert script == log.script
    for name in ("serial", "lockstep", "metropolis"):
        replay = town(name, PlayerInput(script))
        run_virtual(replay, horizon=name != "lockstep")
        assert outcome(replay) == outcome(live), name


def test_script_format_round_trips_and_names_bad_lines() -> None:
    assert parse_script("\n".join(script_lines(SCRIPT))) == SCRIPT
    with pytest.raises(ValueError, match="line 2"):
        parse_script('{"step": 1, "move": [1, 0]}\n{"step": 2, "jump": 1}')


def test_player_replies_are_interactive_and_preempt_background_work() -> None:
    sim = town("metropolis", PlayerInput(SCRIPT), n=80, size=30, steps=8)
    for agent in sim.agents[1:]:
        agent.config = WalkerConfig(call_prob=1.0, output_tokens=200)  # type: ignore[attr-defined]
    llm, cluster = run_virtual(sim, max_running=4)  # a full batch: the player's replies must preempt
    replica = cluster.replicas[0]
    assert replica.preemptions > 0 and replica.recomputed_tokens > 0
    assert replica.completed == len(llm.responses)  # every preempted request resumed and finished
    replies = [r for r in sim.agents[0].talked]  # type: ignore[attr-defined]
    assert replies
    expected = outcome(sim)
    again = town("serial", PlayerInput(SCRIPT), n=80, size=30, steps=8)
    for agent in again.agents[1:]:
        agent.config = WalkerConfig(call_prob=1.0, output_tokens=200)  # type: ignore[attr-defined]
    run_virtual(again, max_running=4)
    assert outcome(again) == expected  # preemption changes when answers come, never the run


def test_interactive_requests_rank_ahead_of_every_step() -> None:
    background = LLMRequest(agent="a", step=0, function="f")
    person = LLMRequest(agent="b", step=10_000, function="f", interactive=True)
    assert person.priority < background.priority


def test_pacing_is_chosen_by_name() -> None:
    assert not make_pace("script").live and make_pace("clock", 0.5).live
    with pytest.raises(ValueError, match="choose one of: script, clock, input"):
        make_pace("turbo")


class Instant:
    """Answers at once (real time, no server)."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return LLMResponse(text="fine, thanks", prompt_tokens=1, completion_tokens=1)


def test_a_live_player_on_the_wall_clock_replays_to_the_same_run(tmp_path: Path) -> None:
    inputs = PlayerInput()
    live = town("metropolis", inputs, steps=10)
    player = live.agents[0]
    assert isinstance(player, PlayerAgent)
    player.pace = make_pace("input", 0.05)  # a step when input comes, or after 50 ms without any
    log = PlayerLog(player, tmp_path / "player.jsonl")
    live.listeners.append(log)

    def keyboard() -> None:
        for command in (Say("hi"), Move(1, 0), Move(0, 1), Say("bye")):
            time.sleep(0.03)
            inputs.push(command)

    typist = threading.Thread(target=keyboard)
    typist.start()
    asyncio.run(AsyncioRuntime(live, Instant()).run())
    typist.join()
    log.close()
    assert sum(len(c) for c in log.script.values()) == 4
    replay = town("lockstep", PlayerInput(read_script(tmp_path / "player.jsonl")), steps=10)
    asyncio.run(AsyncioRuntime(replay, Instant()).run())  # as fast as it goes: the script needs no waiting
    assert outcome(replay) == outcome(live)


def test_the_horizon_marks_requests_of_agents_near_the_player() -> None:
    sim = town("metropolis", PlayerInput(SCRIPT), n=30, size=30, steps=8)
    env = Environment()
    player = sim.agents[0]
    assert isinstance(player, PlayerAgent)
    horizon = PlayerHorizon(VirtualLLM(env, Cluster(env, preset("l4-llama3-8b"))), sim, player)
    VirtualRuntime(sim, env, horizon).run()
    assert 0 < horizon.marked < horizon.requests  # some near it, not the whole town


def test_a_clock_paced_player_steps_on_the_wall_clock() -> None:
    sim = town("metropolis", PlayerInput(SCRIPT), steps=10)
    player = sim.agents[0]
    assert isinstance(player, PlayerAgent)
    player.pace = make_pace("clock", 0.03)
    started = time.perf_counter()
    asyncio.run(AsyncioRuntime(sim, Instant()).run())
    assert time.perf_counter() - started >= 9 * 0.03  # step 9 starts 9 periods after step 0
