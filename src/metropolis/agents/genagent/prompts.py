"""Our own prompts, short enough for a 135M model, each with the JSON schema its answer should follow."""

from __future__ import annotations

from typing import Any

Messages = list[dict[str, str]]

SYSTEM = "You simulate a person in a small town. Answer briefly, in JSON, exactly as asked."


def _msgs(user: str) -> Messages:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _object_schema(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties)}


def _text(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars}


def _list(item: dict[str, Any], max_items: int) -> dict[str, Any]:
    # Bounded arrays of bounded strings: a small model under a grammar otherwise answers [] or never stops.
    return {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}


def schema_plan(n: int) -> dict[str, Any]:
    return _object_schema({"plan": _list(_text(60), n)})


def schema_schedule(n: int) -> dict[str, Any]:
    hour = {"type": "integer", "minimum": 0, "maximum": 23}
    return _object_schema({"schedule": _list(_object_schema({"hour": hour, "activity": _text(50)}), n)})


def schema_subtasks(n: int) -> dict[str, Any]:
    minutes = {"type": "integer", "minimum": 1, "maximum": 60}
    return _object_schema({"subtasks": _list(_object_schema({"task": _text(50), "minutes": minutes}), n)})


def schema_insights(n: int) -> dict[str, Any]:
    return _object_schema({"insights": _list(_text(100), n)})


SCHEMA_SCORE = _object_schema({"score": {"type": "integer", "minimum": 1, "maximum": 10}})
SCHEMA_YES_NO = _object_schema({"answer": {"type": "string", "enum": ["yes", "no"]}})
SCHEMA_LINE = _object_schema({"utterance": _text(140), "end": {"type": "boolean"}})


def choice_schema(options: list[str]) -> dict[str, Any]:
    return _object_schema({"choice": {"type": "string", "enum": list(options)}})


def daily_plan(identity: str, date: str, wake: int, memories: list[str]) -> Messages:
    return _msgs(
        f"{identity}\nRecent memories: {'; '.join(memories) or 'none'}\n"
        f"Today is {date}. Write this person's broad plan for today, starting with waking up at {wake}:00, as a "
        'JSON object {"plan": ["...", "..."]} with 4 to 6 short items.'
    )


def hourly_schedule(identity: str, plan: list[str], hours: list[int]) -> Messages:
    return _msgs(
        f"{identity}\nToday's plan: {'; '.join(plan)}\n"
        f"For each hour from {hours[0]}:00 to {hours[-1]}:00, say what this person does. Answer as JSON "
        '{"schedule": [{"hour": 7, "activity": "having breakfast"}, ...]}.'
    )


def decompose(identity: str, activity: str, hour: int, minutes: int, memories: list[str]) -> Messages:
    return _msgs(
        f"{identity}\nRelevant memories: {'; '.join(memories) or 'none'}\n"
        f"From {hour}:00, for {minutes} minutes, this person is {activity}. Break it into 2 to 5 steps with their "
        'minutes, as JSON {"subtasks": [{"task": "...", "minutes": 15}, ...]}.'
    )


def choose(identity: str, question: str, options: list[str]) -> Messages:
    listed = "\n".join(f"- {o}" for o in options)
    return _msgs(f'{identity}\n{question}\nOptions:\n{listed}\nAnswer as JSON {{"choice": "<one option>"}}.')


def importance(identity: str, memory: str) -> Messages:
    return _msgs(
        f"{identity}\nOn a scale of 1 (mundane, like brushing teeth) to 10 (poignant, like a break-up), how "
        f'important to this person is: "{memory}"? Answer as JSON {{"score": <1-10>}}.'
    )


def decide_to_talk(identity: str, other: str, other_action: str, time: str, memories: list[str]) -> Messages:
    return _msgs(
        f"{identity}\nIt is {time}. {other} is nearby, {other_action}.\n"
        f"What this person remembers about {other}: {'; '.join(memories) or 'nothing'}\n"
        f'Would this person start a conversation with {other} now? Answer as JSON {{"answer": "yes"}} or '
        '{"answer": "no"}.'
    )


def utterance(
    identity: str,
    listener: str,
    situation: str,
    memories: list[str],
    lines: list[str],
    opening: bool = False,
    last: bool = False,
) -> Messages:
    so_far = "\n".join(lines) or "(nobody has spoken yet)"
    hint = f" Greet {listener}." if opening else f" Say goodbye to {listener}." if last else ""
    return _msgs(
        f"{identity}\n{situation}\nWhat this person remembers about {listener}: {'; '.join(memories) or 'nothing'}\n"
        f"Conversation so far:\n{so_far}\n"
        f"Write this person's next line to {listener}, one or two sentences.{hint} Answer as JSON "
        '{"utterance": "...", "end": false}; set "end" to true when the conversation is over.'
    )


def reflect(identity: str, memories: list[str], n: int) -> Messages:
    listed = "\n".join(f"- {m}" for m in memories)
    return _msgs(
        f"{identity}\nRecent memories:\n{listed}\n"
        f'What {n} high-level insights can this person draw from these? Answer as JSON {{"insights": ["...", ...]}}.'
    )
