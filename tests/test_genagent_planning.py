"""Planning: the persona's routine as a fallback, wake and sleep hours, place options, and planning calls."""

from __future__ import annotations

import pytest

from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.parsing import Asker, ParseStats
from metropolis.agents.genagent.persona import home_area, known_areas, sleep_hour, wake_hour
from metropolis.agents.genagent.planning import (
    area_options,
    fallback_schedule,
    keyword_area,
    plan_day,
    plan_hour,
    plan_schedule,
    work_sentence,
)
from metropolis.llm.types import LLMResponse
from metropolis.paths import shared_data_dir
from metropolis.world.smallville import Persona, load_smallville
from tests.genagent_helpers import mini_town


def isabella() -> Persona:
    if shared_data_dir(required=False) is None:
        pytest.skip("shared/data (the Smallville persona files) is not available")
    town = load_smallville()
    return next(p for p in town.personas if p.name == "Isabella Rodriguez")


def test_real_persona_routine_and_hours() -> None:
    p = isabella()
    assert (wake_hour(p, 7), sleep_hour(p, 22)) == (6, 23)
    work = "planning on having a Valentine's Day party at Hobbs Cafe with her customers"
    assert work_sentence(p) == work
    sched = fallback_schedule(p, 6, 23)
    assert (sched[6], sched[7], sched[9], sched[12], sched[18], sched[22]) == (
        "waking up and getting ready for the day",
        "having breakfast",
        work,
        "having lunch",
        "having dinner",
        "relaxing at home",
    )
    assert sorted(sched) == list(range(6, 23))
    areas = known_areas(p)
    assert home_area(p, areas) == "the Ville:Isabella Rodriguez's apartment:main room"
    assert areas["the Ville:Hobbs Cafe:cafe"][:2] == ["behind the cafe counter", "cafe customer seating"]


@pytest.mark.parametrize(
    ("lifestyle", "wake", "sleep"),
    [
        ("goes to bed around midnight, awakes up around 9am", 9, 24),
        ("goes to bed around 10pm, awakes up around 6am, eats dinner around 17:30pm.", 6, 22),
        ("sleeps whenever", 7, 23),
        ("goes to bed around 2am, awakes up around 12pm", 12, 23),
    ],
)
def test_wake_and_sleep_hours(lifestyle: str, wake: int, sleep: int) -> None:
    p = Persona("X", (0, 0), {}, {}, [], lifestyle=lifestyle)
    assert (wake_hour(p, 7), sleep_hour(p, 23)) == (wake, sleep)


AREAS = ["w:Ann's house:main room", "w:Hobbs Cafe:cafe", "w:Johnson Park:park", "w:Library:library"]


def test_area_options_put_the_likely_places_first_and_cap() -> None:
    assert keyword_area("drinking coffee at the cafe", AREAS, AREAS[0]) == "w:Hobbs Cafe:cafe"
    assert keyword_area("brushing teeth", AREAS, AREAS[0]) == AREAS[0]
    got = area_options("walking in the park", AREAS, AREAS[0], AREAS[3], limit=3)
    assert got == ["w:Johnson Park:park", "w:Ann's house:main room", "w:Library:library"]
    assert area_options("sleep", AREAS, AREAS[0], AREAS[0], limit=8) == AREAS


class Script:
    """Answers by function name; remembers the order of functions asked."""

    def __init__(self, **answers: str) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(
        self, function: str, messages: list[dict[str, str]], max_tokens: int, schema: object
    ) -> LLMResponse:
        self.asked.append(function)
        return LLMResponse(self.answers.get(function, "?"), 1, 1)


async def test_plan_day_schedule_and_hour_from_answers() -> None:
    persona = mini_town(1).personas[0]
    cfg = GenAgentConfig(schedule_horizon_hours=3)
    script = Script(
        daily_plan='{"plan": ["wake up", "open the cafe"]}',
        hourly_schedule='{"schedule": [{"hour": 7, "activity": "breakfast"}, {"hour": 8, "activity": "open cafe"}]}',
        task_decomp='{"subtasks": [{"task": "unlock the door", "minutes": 15}, {"task": "brew", "minutes": 30}]}',
        action_area='{"choice": "Hobbs Cafe: cafe"}',
    )
    ask = Asker(script, 0, ParseStats())
    assert await plan_day(ask, persona, "id", cfg, "Monday", 7, 23, []) == ["wake up", "open the cafe"]
    sched = await plan_schedule(ask, persona, "id", cfg, ["wake up"], 7, 7, 23)
    assert sched == {7: "breakfast", 8: "open cafe", 9: "open cafe"}
    areas = sorted(known_areas(persona))
    home = "the Ville:Ann's house:main room"
    tasks = await plan_hour(ask, "id", cfg, "open the cafe", 8, 45, areas, home, home, [])
    assert [(t.task, t.start, t.end, t.area) for t in tasks] == [
        ("unlock the door", 8 * 3600 + 900.0, 8 * 3600 + 1800.0, "the Ville:Hobbs Cafe:cafe"),
        ("brew", 8 * 3600 + 1800.0, 9 * 3600.0, "the Ville:Hobbs Cafe:cafe"),
    ]
    assert script.asked == ["daily_plan", "hourly_schedule", "task_decomp", "action_area"]


async def test_planning_falls_back_to_the_routine() -> None:
    persona = mini_town(1).personas[0]
    stats = ParseStats()
    ask = Asker(Script(), 1, stats)
    cfg = GenAgentConfig(schedule_horizon_hours=2)
    plan = await plan_day(ask, persona, "id", cfg, "Monday", 7, 23, [])
    assert plan[:2] == ["waking up and getting ready for the day at 7:00", "having breakfast at 8:00"]
    assert await plan_schedule(ask, persona, "id", cfg, plan, 11, 7, 23) == {
        11: "planning a party",
        12: "having lunch",
    }
    areas = sorted(known_areas(persona))
    home = "the Ville:Ann's house:main room"
    tasks = await plan_hour(ask, "id", cfg, "having coffee at the cafe", 9, 60, areas, home, home, [])
    assert [(t.task, t.area) for t in tasks] == [("having coffee at the cafe", "the Ville:Hobbs Cafe:cafe")]
    assert (stats.answers, stats.fallbacks) == (8, 4)
