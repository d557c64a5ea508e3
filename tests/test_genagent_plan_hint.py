"""The generative agent publishes its own plan (`ctx.plan`) before its requests: the end of its subtask, or its
wake-up when it will be asleep by then; the live invocation distance counts down to it."""

from __future__ import annotations

from metropolis.agents.genagent import GenAgentConfig, build_town_agents
from metropolis.agents.genagent.plan_hint import next_call_hint
from metropolis.agents.genagent.planning import Subtask
from metropolis.engine.records import Plan
from metropolis.engine.simulation import Simulation
from metropolis.kernel import Environment
from metropolis.llm.types import LLMRequest
from metropolis.runtime.serving_memory import track_invocation_distance
from metropolis.runtime.virtual import VirtualRuntime
from tests.genagent_helpers import ScriptedLLM, mini_town, sensible_answer
from tests.scenarios import AfterCommit

HOUR = 3600


def run_ann(
    start: int, steps: int
) -> tuple[Simulation, list[LLMRequest], list[tuple[int, float]], list[tuple[int, Plan]]]:
    """Ann alone in the mini town; after every commit, (her step, her invocation distance); every plan she
    published, with the number of requests she had sent by then."""
    town = mini_town(1)
    agents = build_town_agents(town, 1, GenAgentConfig(embedder="hash"), seed=0)
    sim = Simulation(town.world, agents, until=steps, scheduler="metropolis", start_seconds=start, keep_history=True)
    env = Environment()
    llm = ScriptedLLM(sensible_answer, env, latency=3.0)
    live = track_invocation_distance(sim)
    published: list[tuple[int, Plan]] = []
    sim.plan_listeners.append(lambda agent, plan: published.append((len(llm.requests), plan)))
    seen: list[tuple[int, float]] = []
    sim.dispatcher.observers.append(AfterCommit(lambda: seen.append((sim.table.step[0], live.distance(0)))))
    VirtualRuntime(sim, env, llm).run()
    return sim, llm.requests, seen, published


def test_walking_to_a_subtask_publishes_the_subtask_end() -> None:
    start = 6 * HOUR + 58 * 60  # Ann wakes at 7 (step 12), plans "making coffee" 7:00-7:10 in the park, walks there
    sim, requests, seen, published = run_ann(start, 100)
    assert [(r.step, r.function) for r in requests] == [
        (12, "daily_plan"), (12, "hourly_schedule"), (12, "task_decomp"), (12, "action_area")
    ]  # fmt: skip
    end = (7 * HOUR + 10 * 60 - start) // 10  # 7:10, the step Ann picks her next subtask
    assert published == [(3, Plan(12, end))]  # before the last call, once the subtask is settled
    history = sim.history(0)
    walked = [s for s in range(13, len(history)) if history[s].pos != history[s - 1].pos]
    assert walked == list(range(13, 13 + len(walked))) and 10 < len(walked) < end - 12  # n tiles, within the plan
    distances = dict(seen)
    assert distances[12] == 0.0  # no plan yet: may call at its very next step
    assert [distances[s] for s in range(13, end + 1)] == [float(end - s) for s in range(13, end + 1)]


def test_a_sleeping_agent_counts_to_its_wake_step() -> None:
    start = 22 * HOUR + 58 * 60  # two minutes before Ann's bedtime (11 pm); she wakes at 7 am
    sim, requests, seen, published = run_ann(start, 30)
    wake = (24 * HOUR + 7 * HOUR - start) // 10
    assert requests[-1].step == 0 and published == [(len(requests) - 1, Plan.asleep(0, wake))]
    assert [s.action.startswith("sleeping") for s in sim.history(0)[13:]] == [True] * 18  # from step 12 (23:00) on
    assert seen[:-1] == [(s, float(wake - s)) for s in range(1, 30)] and seen[-1] == (30, float("inf"))


def test_no_hint_without_a_current_subtask_or_a_wake_up() -> None:
    tasks = [Subtask("working", 9 * HOUR, 9 * HOUR + 600, "cafe")]
    always = lambda t: True  # noqa: E731
    assert next_call_hint(5, 9 * HOUR + 100, 10, tasks, always, 7) == Plan(5, 55)  # ceil(500 s / 10 s)
    assert next_call_hint(5, 10 * HOUR, 10, tasks, always, 7) is None  # the old hour's plan
    assert next_call_hint(5, 9 * HOUR, 10, tasks, lambda t: t < 9 * HOUR + 600, 7) is None  # never wakes again
