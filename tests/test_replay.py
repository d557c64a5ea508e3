"""Replaying a workload: every policy reproduces the same states; the oracle and the bounds frame them."""

from __future__ import annotations

import math

import pytest

from metropolis.agents.replay import filler_text, replay_simulation
from metropolis.bench.sim import BOUNDS, SCHEDULING_POLICIES, Setting, critical_path, gpu_limit, run_setting
from metropolis.llm.serving import Cluster, VirtualLLM, preset
from metropolis.paths import shared_data_dir
from metropolis.runtime import Environment, VirtualRuntime
from metropolis.runtime.serving_memory import track_invocation_distance
from metropolis.scheduling import DependencyGraph
from metropolis.workloads import DayConfig, generate
from tests.scenarios import AfterCommit

pytestmark = pytest.mark.skipif(
    shared_data_dir(required=False) is None, reason="needs shared/data/smallville (the real town)"
)


@pytest.fixture(scope="module")
def town():
    from metropolis.world.smallville import load_smallville

    return load_smallville()


def _run(workload, world, scheduler, gpus=1, check=False):
    sim = replay_simulation(workload, world, scheduler, keep_history=True, check_causality=check)
    env = Environment()
    llm = VirtualLLM(env, Cluster(env, preset("l4-llama3-8b", gpus=gpus)))
    report = VirtualRuntime(sim, env, llm).run()
    return sim, report


def test_every_policy_replays_the_same_states_and_the_oracle_is_fastest(town) -> None:
    workload, layout = generate(town, DayConfig(agents=25, start_hour=12.0, hours=0.05, seed=1))
    world = layout.world(workload.perception_radius)
    histories, durations = {}, {}
    for policy in ("serial", "lockstep", "metropolis", "oracle"):
        sim, report = _run(workload, world, policy, check=policy == "metropolis")
        histories[policy] = [sim.history(i) for i in range(workload.agents)]
        durations[policy] = report.duration
        assert report.llm_calls == workload.calls
    assert histories["lockstep"] == histories["serial"]
    assert histories["metropolis"] == histories["serial"]
    assert histories["oracle"] == histories["serial"]
    for i in range(workload.agents):
        assert [s.pos for s in histories["serial"][i]] == [workload.position(i, s) for s in range(workload.steps + 1)]
    assert durations["oracle"] <= durations["metropolis"] <= durations["lockstep"] <= durations["serial"]
    graph = DependencyGraph.from_steps(workload.step_deps(), workload.agents, workload.steps)
    serving = preset("l4-llama3-8b", gpus=1)
    assert critical_path(workload, graph, serving) <= durations["oracle"] * 1.001
    assert gpu_limit(workload, serving) <= durations["oracle"]


def test_one_large_town_replays_the_same_under_metropolis(town) -> None:
    workload, layout = generate(town, DayConfig(agents=100, start_hour=12.0, hours=0.03, mode="large", seed=2))
    world = layout.world(workload.perception_radius)
    serial, _ = _run(workload, world, "serial", gpus=8)
    ooo, _ = _run(workload, world, "metropolis", gpus=8, check=True)
    assert [ooo.history(i) for i in range(100)] == [serial.history(i) for i in range(100)]


def test_bench_setting_reports_every_policy_and_bound(town) -> None:
    result = run_setting(town, Setting("quiet", 6.0, 0.05, 50, 2))
    assert set(result.results) == {*SCHEDULING_POLICIES, *BOUNDS}
    assert result.ratio("serial", "serial") == 1.0
    assert result.share_of_oracle("oracle") == 1.0
    assert result.results["serial"].mean_in_flight == pytest.approx(1.0, abs=0.01)
    assert result.ratio("metropolis", "serial") > 1.0


def test_filler_text_has_one_word_per_token() -> None:
    assert filler_text(3) == "town town town"
    assert filler_text(0) == "town"


async def test_real_time_replay_sends_prompts_of_the_recorded_size(town) -> None:
    from metropolis.llm.types import LLMRequest, LLMResponse
    from metropolis.runtime import AsyncioRuntime

    class Endpoint:
        def __init__(self) -> None:
            self.seen: list[tuple[int, int]] = []

        async def complete(self, request: LLMRequest) -> LLMResponse:
            words = len(request.prompt_text().split())
            self.seen.append((words, request.max_tokens))
            return LLMResponse("ok", words, request.max_tokens)

    workload, layout = generate(town, DayConfig(agents=25, start_hour=12.0, hours=0.01, seed=1))
    sim = replay_simulation(workload, layout.world(workload.perception_radius), "metropolis", send_text=True)
    endpoint = Endpoint()
    report = await AsyncioRuntime(sim, endpoint).run()
    assert report.llm_calls == workload.calls > 0
    assert sorted(endpoint.seen) == sorted(
        zip(workload.call_prompt.tolist(), workload.call_output.tolist(), strict=True)
    )


@pytest.mark.parametrize("mode", ["copies", "large"])
def test_walking_distance_workloads_replay_the_same_and_observe_only_within_walking_reach(town, mode) -> None:
    config = DayConfig(agents=50, start_hour=12.0, hours=0.03, mode=mode, metric="walking", seed=3)
    workload, layout = generate(town, config)
    world = layout.world(workload.perception_radius, metric="walking")
    deps = list(workload.step_deps())
    assert sum(len(rec.observed) for rec in deps) > 0
    for rec in deps:  # every recorded observation is within R on foot, walls counted
        here = workload.position(rec.agent, rec.step)
        for other in rec.observed:
            assert world.metric.distance(here, workload.position(other, rec.step)) <= workload.perception_radius
    serial, _ = _run(workload, world, "serial", gpus=8)
    ooo, _ = _run(workload, world, "metropolis", gpus=8, check=True)
    assert [ooo.history(i) for i in range(50)] == [serial.history(i) for i in range(50)]


def test_replay_publishes_each_speakers_plan_as_its_invocation_distance(town) -> None:
    """Serial, at every step boundary: an agent's own distance is what the plan of its last call said (an agent
    mid-sub-task: the steps to its sub-task's end), and the scheduler adds its place in the order."""
    workload, layout = generate(town, DayConfig(agents=25, start_hour=12.0, hours=0.05, seed=1))
    sim = replay_simulation(workload, layout.world(workload.perception_radius), "serial")
    live = track_invocation_distance(sim)
    last_call: dict[int, dict[int, int]] = {}  # agent -> step -> the last step <= it with a call for the agent
    for i in range(workload.agents):
        called = set(workload.call_step[workload.call_speaker == i].tolist())
        latest = None
        for s in range(workload.steps):
            latest = s if s in called else latest
            if latest is not None:
                last_call.setdefault(i, {})[s] = latest
    seen = []

    def check() -> None:
        steps = sim.table.step
        s = steps[0] - 1
        if s < 0 or s + 1 >= workload.steps or min(steps) != max(steps):
            return  # only between two whole steps
        for i in range(workload.agents):
            published = last_call.get(i, {}).get(s)
            own = live.plans.distance(i)
            if published is None:
                assert own == math.inf
                continue
            assert own == workload.plan_at(i, published) - (s + 1)
            assert live.distance(i) == i / workload.agents + own
            seen.append(own)

    sim.dispatcher.observers.append(AfterCommit(check))
    env = Environment()
    VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset("l4-llama3-8b")))).run()
    assert len(seen) > workload.agents * 5 and sum(d >= 5 for d in seen) > len(seen) / 2  # mostly mid-sub-task


def test_promises_to_stand_still_and_members_run_together_keep_the_states(town) -> None:
    """Replay agents that promise their recorded still stretches, members run together or one after another:
    the same states, with the causality checker on. (Timing is not asserted: list scheduling is not monotone.)"""
    workload, layout = generate(town, DayConfig(agents=25, start_hour=12.0, hours=0.1, seed=1))
    world = layout.world(workload.perception_radius)
    histories = {}
    for still, members in ((False, "serial"), (False, "concurrent"), (True, "concurrent")):
        sim = replay_simulation(
            workload, world, "metropolis", keep_history=True, check_causality=True, members=members,
            promise_still=still,
        )  # fmt: skip
        env = Environment()
        report = VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset("l4-llama3-8b", gpus=8)))).run()
        assert report.llm_calls == workload.calls
        histories[still, members] = [sim.history(i) for i in range(workload.agents)]
    assert histories[True, "concurrent"] == histories[False, "concurrent"] == histories[False, "serial"]
