"""Checks on the model's text: real malformed SmolLM2-135M answers are no activity and no conversation line."""

from __future__ import annotations

import pytest

from metropolis.agents.genagent.agent import walking_text
from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.conversation import fallback_line, frame_line, line_parser
from metropolis.agents.genagent.planning import parse_schedule, parse_subtasks
from metropolis.agents.genagent.validation import ActivityCheck, LineCheck

NAMES = ("Abigail Chen", "Latoya Williams", "Rajiv Patel")
WHISPERS = ["You think you are kind of cute", "Rajiv Patel is your housemate whom you've known for about a year"]
CHECK = ActivityCheck.for_persona(WHISPERS, NAMES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("having breakfast", "having breakfast"),
        ("working on her painting", "working on her painting"),
        ("Quietly reading the news.", "Quietly reading the news"),
        # Real SmolLM2-135M answers from `metropolis run --llm local`.
        ("Abigail Chen", ""),  # a persona's name
        ("Rajiv", ""),
        ("talking to Latoya about politics", ""),
        ("You think you are kind of cute", ""),  # a whisper, second person
        ("thinking Rajiv Patel is your housemate", ""),
        ("making sure you're on the right track", ""),  # meta
        ("The conversation has just ended", ""),
        ("writing the JSON", ""),
        ("breakfast", ""),  # no -ing verb
        ("is a digital photographer who has a keen eye", ""),
        ("Good morning", ""),
        ("Monday February 13, 2023", ""),
    ],
)
def test_activity_check(text: str, expected: str) -> None:
    assert CHECK(text) == expected


def test_copied_whisper_is_no_activity_even_without_second_person() -> None:
    check = ActivityCheck.for_persona(["sometimes spending time at the pub when it is late"], NAMES)
    assert check("spending time at the pub when it is late") == ""
    assert check("spending time at the pub") == ""
    assert check("spending time in the garden") == "spending time in the garden"


def test_schedule_and_subtasks_drop_what_the_check_rejects() -> None:
    text = (
        '{"schedule": [{"hour": 8, "activity": "Abigail Chen"}, {"hour": 9, "activity": "You think you are kind'
        ' of cute"}, {"hour": 10, "activity": "painting in the studio"}]}'
    )
    assert parse_schedule(text, [8, 9, 10], CHECK) == {
        8: "painting in the studio",
        9: "painting in the studio",
        10: "painting in the studio",
    }
    assert parse_schedule('{"schedule": [{"hour": 8, "activity": "Latoya Williams"}]}', [8], CHECK) is None
    cfg = GenAgentConfig(max_subtasks=3, min_subtask_minutes=5)
    subtasks = '{"subtasks": [{"task": "Abigail Chen", "minutes": 5}, {"task": "making tea", "minutes": 10}]}'
    assert parse_subtasks(subtasks, 30, cfg, CHECK) == [("making tea", 30)]
    assert parse_subtasks('["making sure you\'re on the right track"]', 30, cfg, CHECK) is None


def test_walking_text_is_grammatical_for_any_activity() -> None:
    assert walking_text("Hobbs Cafe", "having breakfast") == "walking to Hobbs Cafe, then having breakfast"
    assert walking_text("Hobbs Cafe", "") == "walking to Hobbs Cafe"


def line(speaker: str, listener: str, said: tuple[str, ...], opening: bool, text: str) -> tuple[str, bool] | None:
    return line_parser(LineCheck(speaker, listener, said, opening))(text)


@pytest.mark.parametrize(
    ("speaker", "listener", "said", "text", "expected"),
    [
        ("Abigail Chen", "Latoya Williams", (), '{"utterance": "Hi Latoya! Coffee?"}', ("Hi Latoya! Coffee?", False)),
        # Real SmolLM2-135M lines: narration as the opening line, a line addressed to the speaker, an echo.
        (
            "Latoya Williams",
            "Abigail Chen",
            (),
            '{"utterance": "The conversation has just ended, and I\'m glad"}',
            None,
        ),
        ("Abigail Chen", "Latoya Williams", (), '{"utterance": "Good morning, Abigail! How are you?"}', None),
        (
            "Latoya Williams",
            "Abigail Chen",
            ("Good morning, Latoya! How are you today?",),
            '{"utterance": "How are you today? How\'s your day going?"}',
            None,
        ),
        ("Abigail Chen", "Latoya Williams", (), "Latoya Williams: I'm fine", None),  # the wrong speaker
        ("Abigail Chen", "Latoya Williams", (), "Abigail Chen: Hello Latoya", ("Hello Latoya", False)),
        ("Abigail Chen", "Latoya Williams", (), '{"utterance": "Goodbye, see you later!"}', None),  # bye first
        (
            "Abigail Chen",
            "Latoya Williams",
            ("Hi!",),
            '{"utterance": "Goodbye, see you later!", "end": true}',
            ("Goodbye, see you later!", True),
        ),
        ("Abigail Chen", "Latoya Williams", (), '{"utterance": ""}', None),
        ("Latoya Williams", "Abigail Chen", (), '{"utterance": "Abigail Chen"}', None),  # a real bare name
    ],
)
def test_line_check(speaker: str, listener: str, said: tuple[str, ...], text: str, expected: object) -> None:
    assert line(speaker, listener, said, not said, text) == expected


def test_opening_greets_and_closing_says_goodbye() -> None:
    assert frame_line("Busy day?", "Latoya Williams", True, False, 8) == "Good morning, Latoya! Busy day?"
    assert frame_line("Hi! Busy day?", "Latoya Williams", True, False, 14) == "Hi! Busy day?"
    assert frame_line("Nice talk", "Rajiv Patel", False, True, 19) == "Nice talk See you later, Rajiv!"
    assert frame_line("Bye now!", "Rajiv Patel", False, True, 19) == "Bye now!"
    assert fallback_line("Rajiv Patel", 0, False, 15) == "Good afternoon, Rajiv! How are you today?"


def test_a_waking_hour_is_never_spent_asleep() -> None:
    from metropolis.agents.genagent.planning import awake_check, parse_schedule

    check = awake_check(lambda text: text)
    assert check("Sleeping at home") == "" and check("taking a nap") == ""
    assert check("having breakfast") == "having breakfast"
    # A schedule that puts the persona to sleep in a waking hour is no answer: the caller retries, then the routine.
    good = '{"schedule": [{"hour": 8, "activity": "having breakfast"}]}'
    assert parse_schedule(good, [8], check) == {8: "having breakfast"}
    assert parse_schedule(good.replace("having breakfast", "Sleeping at home"), [8], check) is None
