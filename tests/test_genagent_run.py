"""Short multi-agent runs: a scripted model on a tiny town, and the real local SmolLM2 model when installed."""

from __future__ import annotations

import collections
import itertools
import re

import pytest

from metropolis.agents.genagent import GenAgentConfig, Timeline, build_town_agents, parse_summary
from metropolis.engine.simulation import Simulation
from metropolis.kernel import Environment
from metropolis.llm.types import LLMRequest
from metropolis.paths import shared_data_dir
from metropolis.runtime.virtual import VirtualRuntime
from metropolis.world.smallville import load_smallville
from tests.genagent_helpers import ScriptedLLM, mini_town, sensible_answer

START = 6 * 3600 + 58 * 60  # 6:58 am, two minutes before Ann and Bob wake up


def run(scheduler: str, answer=sensible_answer, steps: int = 90, n: int = 3, config: GenAgentConfig | None = None):
    town = mini_town(n)
    agents = build_town_agents(town, n, config or GenAgentConfig(embedder="hash"), seed=0)
    sim = Simulation(
        town.world,
        agents,
        until=steps,
        scheduler=scheduler,
        start_seconds=START,
        keep_history=True,
        check_causality=True,
    )
    timeline = Timeline(START, town.world.seconds_per_step)
    sim.listeners.append(timeline)
    env = Environment()
    llm = ScriptedLLM(answer, env, latency=3.0)
    VirtualRuntime(sim, env, llm).run()
    histories = [sim.history(i) for i in range(n)]
    return agents, histories, timeline, llm


def test_same_story_under_every_scheduler() -> None:
    results = {s: run(s) for s in ("serial", "lockstep", "metropolis")}
    ref_agents, ref_hist, ref_tl, _ = results["serial"]
    for agents, hist, tl, _ in results.values():
        assert hist == ref_hist
        assert [a.snapshot() for a in agents] == [a.snapshot() for a in ref_agents]
        assert tl.render() == ref_tl.render()


def test_agents_sleep_wake_plan_walk_and_talk() -> None:
    agents, histories, timeline, llm = run("metropolis")
    ann, bob, cat = agents
    # Asleep until 7 am (step 12): no calls, no moves.
    assert all(s.action.startswith("sleeping") for s in histories[0][:12])
    assert {r.step for r in llm.requests if r.agent == "Ann Lee"} >= {12}
    assert min(r.step for r in llm.requests) == 12
    # Cat wakes at 8: sleeps through, never called, never talked to.
    assert all(s.action.startswith("sleeping") for s in histories[2]) and cat.stats.answers == 0
    # Every step is a legal move on walkable tiles.
    world = mini_town().world
    for hist in histories:
        for a, b in itertools.pairwise(hist):
            assert world.check_move(a.pos, b.pos) is None
    # Ann and Bob reach the park and talked on the way; both remember it, both spoke.
    assert histories[0][-1].action.endswith("@ the Ville:Johnson Park:park:park garden")
    chats = [[m.text for m in a.memory.nodes if m.kind == "chat"] for a in (ann, bob)]
    assert chats[0] == chats[1] and len(chats[0]) == 1
    speakers = collections.Counter(r.agent for r in llm.requests if r.function == "conversation")
    assert speakers == {"Ann Lee": 3, "Bob Ray": 3}
    said = "\n".join(timeline.agent_lines("Ann Lee"))
    assert "> Ann Lee: Hello there, lovely weather today!\n    > Bob Ray: It is. I'm off to the park" in said
    assert said.count("    > ") == 6 and "> Bob Ray: I will. Bye for now!" in said
    # Few calls: planning at wake-up and the hour, one talk decision, the conversation.
    assert len(llm.requests) <= 20


def garbage(request: LLMRequest) -> str:
    """A model that never follows instructions."""
    return "As an AI language model, I think " + request.function[::-1] + " {unclosed"


def test_garbage_model_falls_back_to_the_persona_routine() -> None:
    agents, histories, _, _ = run("metropolis", answer=garbage)
    ann = agents[0]
    assert ann.schedule[7] == "waking up and getting ready for the day"
    assert ann.schedule[9] == "planning a party"  # the persona's `currently`, as an activity
    assert ann.stats.parsed == 0 and ann.stats.fallbacks > 0
    assert ann.stats.answers == 2 * ann.stats.fallbacks  # one retry each, then the fallback
    assert not any(m.kind == "chat" for m in ann.memory.nodes)  # "talk?" fell back to no
    assert histories[0][-1].action.startswith("waking up and getting ready for the day @ the Ville:Ann's house")


def test_reflection_happens_when_enough_is_important() -> None:
    agents, _, _, llm = run("serial", config=GenAgentConfig(embedder="hash", reflection_threshold=10))
    ann = agents[0]
    assert [m.text for m in ann.memory.nodes if m.kind == "reflection"] == ["people in town are friendly"]
    assert sum(r.function == "reflect" for r in llm.requests if r.agent == "Ann Lee") == 1


def test_timeline_writes_markdown(tmp_path) -> None:
    _, _, timeline, _ = run("serial", steps=20, n=2)
    path = timeline.write(tmp_path / "day.md")
    text = path.read_text()
    assert text.startswith("# Timeline\n\n## Ann Lee  (")
    assert re.search(r"- 06:58:10-07:00:00  sleeping @ the Ville:Ann's house:main room:bed", text)
    assert "Bob Ray: " in timeline.summary(3)


def test_parse_summary_counts_answers() -> None:
    agents, _, _, _ = run("serial", answer=garbage, steps=20, n=1)
    assert parse_summary(agents) == (
        f"Ann Lee: {agents[0].stats.answers} answers, 0 parsed at once, 0 after a retry, "
        f"{agents[0].stats.fallbacks} fallbacks; {len(agents[0].memory)} memories"
    )
    assert agents[0].stats.answers == 2 * agents[0].stats.fallbacks > 0


def test_real_smallville_morning_same_under_serial_and_metropolis() -> None:
    if shared_data_dir(required=False) is None:
        pytest.skip("shared/data (Smallville) is not available")
    start = 6 * 3600 - 60
    outcomes = []
    for scheduler in ("serial", "metropolis"):
        town = load_smallville(agents=3)
        agents = build_town_agents(town, 3, GenAgentConfig(embedder="hash"), seed=0)
        sim = Simulation(town.world, agents, until=120, scheduler=scheduler, start_seconds=start, keep_history=True)
        timeline = Timeline(start, 10)
        sim.listeners.append(timeline)
        env = Environment()
        VirtualRuntime(sim, env, ScriptedLLM(sensible_answer, env, latency=2.0)).run()
        outcomes.append(([sim.history(i) for i in range(3)], timeline.render(), [a.snapshot() for a in agents]))
        latoya = sim.history(0)  # wakes at 6 am: plans and walks a real path; the others sleep on
        assert agents[0].name == "Latoya Williams" and latoya[6].action.startswith("sleeping")
        assert len({s.pos for s in latoya}) > 10
        assert all(town.world.check_move(a.pos, b.pos) is None for a, b in itertools.pairwise(latoya))
        assert all(s.action.startswith("sleeping") for i in (1, 2) for s in sim.history(i))
    assert outcomes[0] == outcomes[1]
