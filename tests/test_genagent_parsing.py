"""Parsing of malformed LLM answers: each parser on a table of sloppy outputs, and the ask/retry/fallback loop."""

from __future__ import annotations

import pytest

from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.conversation import parse_line
from metropolis.agents.genagent.parsing import (
    ParseStats,
    ask,
    clean_sentence,
    extract_json,
    fuzzy_choice,
    parse_int,
    parse_text_list,
    parse_yes_no,
)
from metropolis.agents.genagent.planning import parse_schedule, parse_subtasks
from metropolis.llm.types import LLMResponse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! Here it is: {"a": [1, 2]} Hope that helps.', {"a": [1, 2]}),
        ('```json\n{"a": 2,}\n```', {"a": 2}),
        ('{"a": 1', None),
        ("no json here", None),
        ('[1, 2, 3] and {"b": 1}', [1, 2, 3]),
        ('{bad} then {"c": 3}', {"c": 3}),
        ("", None),
    ],
)
def test_extract_json(text: str, expected: object) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 7}', 7),
        ("I would rate it 8 out of 10.", 8),
        ('{"score": 42}', 10),
        ("-3", 1),
        ('{"score": 6.6}', 7),
        ("very important", None),
        ('{"score": "high"}', None),
    ],
)
def test_parse_int(text: str, expected: int | None) -> None:
    assert parse_int(text, 1, 10) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"answer": "yes"}', True),
        ('{"answer": "No"}', False),
        ('{"talk": true}', True),
        ("Yes, they would say hello.", True),
        ("Probably not. No.", False),
        ("maybe", None),
    ],
)
def test_parse_yes_no(text: str, expected: bool | None) -> None:
    assert parse_yes_no(text) is expected


OPTIONS = ["Hobbs Cafe: cafe", "Johnson Park: park", "Ann's house: main room"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"choice": "Hobbs Cafe: cafe"}', "Hobbs Cafe: cafe"),
        ("johnson park: park", "Johnson Park: park"),
        ("I think she goes to Hobbs Cafe: cafe for coffee.", "Hobbs Cafe: cafe"),
        ('{"choice": "Hobbs Cafe cafe"}', "Hobbs Cafe: cafe"),
        ("the park", "Johnson Park: park"),
        ("the moon", None),
        ("", None),
    ],
)
def test_fuzzy_choice(text: str, expected: str | None) -> None:
    assert fuzzy_choice(text, OPTIONS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"plan": ["wake up", "eat"]}', ["wake up", "eat"]),
        ('["wake up", "", "eat"]', ["wake up", "eat"]),
        ("Plan:\n1. wake up\n2) eat breakfast\n- go to work", ["wake up", "eat breakfast", "go to work"]),
        ('{"plan": [{"item": "wake up"}]}', ["wake up"]),
        ("I cannot help with that.", None),
        ('{"plan": []}', None),
        # Real SmolLM2-135M answers echoing the prompt: the date, a heading, a time word.
        ('{ "plan": ["Morning", "Today is Monday", "2023", "1:45 PM", "take photos"] }', ["take photos"]),
        ('{"plan": ["Abigail Chen\'s plan for Monday February 13, 2023: ", "go out"]}', ["go out"]),
        # A real SmolLM2-135M answer under the JSON grammar: brackets and newlines for items.
        ('{ "plan": [ "]\\n" ,"\\n" ,"\\n" ,"}\\n```\\nThis JSON object is a list of short items:" ]}', None),
    ],
)
def test_parse_text_list(text: str, expected: list[str] | None) -> None:
    assert parse_text_list(text, "plan", 5) == expected


def test_clean_sentence_bounds_length_and_strips_markup() -> None:
    assert clean_sentence('  "**Hello   world**"  ') == "Hello world"
    assert clean_sentence("having breakfast }, {...}]}\n```\nThis JSON is a map") == "having breakfast"
    assert clean_sentence("]\n") == clean_sentence("42") == ""
    assert clean_sentence("word " * 50, 20) == "word word word word"


HOURS = [7, 8, 9, 10]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"schedule": [{"hour": 7, "activity": "breakfast"}, {"hour": 9, "activity": "work"}]}',
            {7: "breakfast", 8: "breakfast", 9: "work", 10: "work"},
        ),
        ("7:00 am - breakfast\n8am: walk\n10:00 - lunch", {7: "breakfast", 8: "walk", 9: "walk", 10: "lunch"}),
        ('{"schedule": [{"hour": "8:00", "activity": "work"}]}', {7: "work", 8: "work", 9: "work", 10: "work"}),
        ('{"schedule": [{"hour": 3, "activity": "party"}]}', None),
        ("I don't know", None),
        (
            '{ "schedule": [{"hour": 7, "activity": "having breakfast }, {...}]}\\n```\\nThis JSON is a map" }] }',
            {7: "having breakfast", 8: "having breakfast", 9: "having breakfast", 10: "having breakfast"},
        ),
        # A real SmolLM2-135M answer cut off by max_tokens: the complete first item is salvaged.
        (
            '{ "schedule": [{"hour": 7, "activity": "having breakfast }, {\\n        "}, '
            '{"hour": 9, "activity": "eating dinner }} }\\n```\\nThis JSON is a list of JSON',
            {7: "having breakfast", 8: "having breakfast", 9: "having breakfast", 10: "having breakfast"},
        ),
    ],
)
def test_parse_schedule(text: str, expected: dict[int, str] | None) -> None:
    assert parse_schedule(text, HOURS) == expected


CFG = GenAgentConfig(max_subtasks=3, min_subtask_minutes=5)


@pytest.mark.parametrize(
    ("text", "total", "expected"),
    [
        (
            '{"subtasks": [{"task": "tea", "minutes": 10}, {"task": "read", "minutes": 30}]}',
            60,
            [("tea", 15), ("read", 45)],
        ),
        ('{"subtasks": [{"task": "tea"}, {"task": "read", "minutes": "x"}]}', 60, [("tea", 30), ("read", 30)]),
        ('{"subtasks": ["tea", "read", "walk", "nap"]}', 60, [("tea", 20), ("read", 20), ("walk", 20)]),
        ("- tea\n- read", 30, [("tea", 15), ("read", 15)]),
        (
            '{"subtasks": [{"task": "tea", "minutes": 1}, {"task": "read", "minutes": 99}]}',
            60,
            [("tea", 5), ("read", 55)],
        ),
        ('{"subtasks": ["tea", "read", "walk"]}', 8, [("tea", 8)]),
        # Real SmolLM2-135M answers under the JSON grammar: digits for tasks.
        ('{ "subtasks": [{"task": "1", "minutes": 2}, {"task": "3", "minutes": 4}]}', 60, None),
        ('{"subtasks": []}', 60, None),
        ("nothing", 60, None),
    ],
)
def test_parse_subtasks(text: str, total: int, expected: list[tuple[str, int]] | None) -> None:
    assert parse_subtasks(text, total, CFG) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"utterance": "Hi Bob!", "end": true}', ("Hi Bob!", True)),
        ('{"line": "Hi Bob!"}', ("Hi Bob!", False)),
        ("Ann Lee: Hi Bob, how are you?", ("Hi Bob, how are you?", False)),
        ('{"utterance": ""}', None),
        ("", None),
    ],
)
def test_parse_line(text: str, expected: tuple[str, bool] | None) -> None:
    assert parse_line(text) == expected


class Answers:
    """Answers in order; records each prompt it was sent."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.prompts: list[list[dict[str, str]]] = []

    async def __call__(
        self, function: str, messages: list[dict[str, str]], max_tokens: int, schema: object
    ) -> LLMResponse:
        self.prompts.append(messages)
        return LLMResponse(self.texts.pop(0), 1, 1)


async def test_ask_parses_first_answer() -> None:
    stats, answers = ParseStats(), Answers('{"score": 3}')
    got = await ask(
        answers, "f", [], lambda t: parse_int(t, 1, 10), 5, max_tokens=8, schema=None, retries=1, stats=stats
    )
    assert (got, stats.answers, stats.parsed, stats.retried, stats.fallbacks) == (3, 1, 1, 0, 0)


async def test_ask_retries_with_firmer_prompt_then_parses() -> None:
    stats, answers = ParseStats(), Answers("hmm", '{"score": 9}')
    got = await ask(
        answers,
        "f",
        [{"role": "user", "content": "q"}],
        lambda t: parse_int(t, 1, 10),
        5,
        max_tokens=8,
        schema=None,
        retries=1,
        stats=stats,
    )
    assert (got, stats.answers, stats.retried, stats.fallbacks) == (9, 2, 1, 0)
    assert answers.prompts[1][-2:] == [
        {"role": "assistant", "content": "hmm"},
        {"role": "user", "content": "Answer ONLY with the JSON object described above, nothing else."},
    ]


async def test_ask_falls_back_after_bounded_retries() -> None:
    stats, answers = ParseStats(), Answers("x", "y", "z")
    got = await ask(
        answers, "f", [], lambda t: parse_int(t, 1, 10), 5, max_tokens=8, schema=None, retries=1, stats=stats
    )
    assert (got, stats.answers, stats.fallbacks, answers.texts) == (5, 2, 1, ["z"])
