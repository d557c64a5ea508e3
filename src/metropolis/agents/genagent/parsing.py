"""Defensive parsing of LLM answers: a small or sloppy model must never crash a run.

Every answer goes through `ask`: a request (with a JSON schema where the server honours it), a tolerant parser
that returns None when it cannot make sense of the text, a bounded number of retries with a firmer instruction,
then a deterministic fallback. Parsers are pure functions of the text, so replays parse the same way.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from metropolis.llm.types import LLMResponse

T = TypeVar("T")

Messages = list[dict[str, str]]
CallFn = Callable[[str, Messages, int, dict[str, Any] | None], Awaitable[LLMResponse]]
Parser = Callable[[str], T | None]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z0-9']+")
_CUT = re.compile(r"\n|\\n|```|[{}\[\]]")
_ENUMERATION = re.compile(r"^\s*\d+[.)]\s+")
_ECHO = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december|monday|"
    r"tuesday|wednesday|thursday|friday|saturday|sunday|json)\b|\d{4}|plan for",
    re.IGNORECASE,
)
_NOT_ACTIVITIES = frozenset(["morning", "today", "afternoon", "evening", "tonight", "now", "plan", "schedule", "day"])
_LETTERS = re.compile(r"[^\W\d_]")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.):]|\(\d+\))\s*(.+?)\s*$")
RETRY_HINT = "Answer ONLY with the JSON object described above, nothing else."


def extract_json(text: str) -> Any | None:
    """The first JSON object or array in `text` (code fences, prose around it and trailing commas tolerated)."""
    text = text.replace("```json", "```").replace("```", " ")
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch not in "{[":
            continue
        for candidate in (text[i:], re.sub(r",\s*([}\]])", r"\1", text[i:])):
            try:
                value, _ = decoder.raw_decode(candidate)
            except ValueError:
                continue
            return value
    return None


def json_items(text: str, key: str) -> list[Any] | None:
    """The list under `key` (or a bare list); else every complete object in the text, salvaged from an answer
    that ran out of tokens mid-list."""
    value = extract_json(text)
    items = value.get(key) if isinstance(value, dict) else value
    if isinstance(items, list):
        return items
    decoder, found, end = json.JSONDecoder(), [], 0
    for i, ch in enumerate(text):
        if ch != "{" or i < end:
            continue
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            continue
        if isinstance(obj, dict) and key not in obj:
            found.append(obj)
    return found or None


def json_field(text: str, key: str) -> Any | None:
    """`key` of the first JSON object in `text`; a bare array stands for the field itself."""
    value = extract_json(text)
    if isinstance(value, dict):
        found = value.get(key)
        if found is None and len(value) == 1:
            found = next(iter(value.values()))
        return found
    if isinstance(value, list):
        return value
    return None


def parse_int(text: str, lo: int, hi: int) -> int | None:
    """The first number in `text` (inside JSON or prose), rounded and clamped to [lo, hi]."""
    value = extract_json(text)
    if isinstance(value, dict):
        nums = [v for v in value.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        if nums:
            return min(hi, max(lo, round(nums[0])))
    match = _NUMBER.search(text)
    if match is None:
        return None
    return min(hi, max(lo, round(float(match.group()))))


def parse_yes_no(text: str) -> bool | None:
    """yes/no from JSON (`{"answer": "yes"}`, `{"talk": true}`) or from the first yes/no word in prose."""
    value = extract_json(text)
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, bool):
                return v
            if isinstance(v, str) and v.strip().lower() in ("yes", "no", "true", "false"):
                return v.strip().lower() in ("yes", "true")
    for word in _WORD.findall(text.lower()):
        if word in ("yes", "true"):
            return True
        if word in ("no", "false"):
            return False
    return None


def fuzzy_choice(text: str, options: Sequence[str]) -> str | None:
    """The option the answer names: exact, then contained in the answer, then the closest by similarity."""
    if not options:
        return None
    value = extract_json(text)
    if isinstance(value, dict):
        strings = [v for v in value.values() if isinstance(v, str)]
        text = strings[0] if strings else text
    answer = text.strip().strip("\"'.` ").lower()
    if not answer:
        return None
    lowered = [o.lower() for o in options]
    if answer in lowered:
        return options[lowered.index(answer)]
    contained = [o for o, low in zip(options, lowered, strict=True) if low in answer]
    if contained:
        return max(contained, key=len)
    close = difflib.get_close_matches(answer, lowered, n=1, cutoff=0.6)
    if close:
        return options[lowered.index(close[0])]
    return _word_overlap_choice(answer, options)


def _word_overlap_choice(answer: str, options: Sequence[str]) -> str | None:
    words = set(_WORD.findall(answer))
    best, best_score = None, 0.0
    for option in options:
        option_words = set(_WORD.findall(option.lower()))
        if not option_words:
            continue
        score = len(words & option_words) / len(option_words)
        if score > best_score:
            best, best_score = option, score
    return best if best_score >= 0.5 else None


def parse_text_list(text: str, key: str, max_items: int) -> list[str] | None:
    """A list of short strings: a JSON array (or `{key: [...]}`), else bulleted or numbered lines."""
    value = json_field(text, key)
    items: list[str] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                item = next((v for v in item.values() if isinstance(v, str)), None)
            if isinstance(item, str) and item.strip():
                items.append(item.strip())
    else:
        for line in text.splitlines():
            match = _LIST_ITEM.match(line)
            if match and not match.group(1).startswith(("{", "[")):
                items.append(match.group(1).strip())
    items = [clean_activity(i, 100) for i in items]
    items = [i for i in items if i]
    return items[:max_items] or None


def clean_activity(text: str, max_chars: int = 80) -> str:
    """A cleaned activity ("having breakfast"), or "" when it is an echo of the prompt rather than an activity.

    Small models answer with bits of the prompt: the date ("Monday February 13, 2023"), a heading ("Abigail's
    plan for today:"), a time word ("Morning"). None of those is something a person does.
    """
    text = clean_sentence(text, max_chars)
    if text.lower() in _NOT_ACTIVITIES or text.endswith(":") or _ECHO.search(text):
        return ""
    return text


def clean_sentence(text: str, max_chars: int = 120) -> str:
    """One line, no quotes or markup, bounded length: what goes into memories, actions and the timeline.

    It ends at the first line break, code fence or bracket (small models run on into markup), and text with
    fewer than three letters (a stray bracket, a bare number) is no sentence: it cleans to "".
    """
    text = _CUT.split(text.strip().lstrip("{}[]"), maxsplit=1)[0]
    text = _ENUMERATION.sub("", text)
    text = re.sub(r"\s+", " ", text).strip().strip("\"'`*#-()., ").strip()
    if len(_LETTERS.findall(text)) < 3:
        return ""
    if len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0]
        text = cut or text[:max_chars]
    return text


@dataclass(slots=True)
class ParseStats:
    """How answers fared: parsed at the first try, after a retry, or replaced by the fallback."""

    answers: int = 0
    parsed: int = 0
    retried: int = 0
    fallbacks: int = 0
    by_function: dict[str, int] = field(default_factory=dict)

    def count(self, function: str) -> None:
        self.by_function[function] = self.by_function.get(function, 0) + 1


async def ask(
    call: CallFn,
    function: str,
    messages: Messages,
    parse: Parser[T],
    fallback: T,
    *,
    max_tokens: int,
    schema: dict[str, Any] | None,
    retries: int,
    stats: ParseStats,
) -> T:
    """Ask, parse, retry at most `retries` times with a firmer instruction, then fall back."""
    prompt = list(messages)
    for attempt in range(retries + 1):
        response = await call(function, prompt, max_tokens, schema)
        stats.answers += 1
        stats.count(function)
        value = parse(response.text)
        if value is not None:
            stats.parsed += 1
            stats.retried += attempt > 0
            return value
        prompt = [
            *messages,
            {"role": "assistant", "content": response.text[:200]},
            {"role": "user", "content": RETRY_HINT},
        ]
    stats.fallbacks += 1
    return fallback


@dataclass(slots=True)
class Asker:
    """`ask` bound to one speaker's call function, the retry limit and the stats it reports into."""

    call: CallFn
    retries: int
    stats: ParseStats

    async def __call__(
        self,
        function: str,
        messages: Messages,
        parse: Parser[T],
        fallback: T,
        *,
        max_tokens: int,
        schema: dict[str, Any] | None = None,
    ) -> T:
        return await ask(
            self.call,
            function,
            messages,
            parse,
            fallback,
            max_tokens=max_tokens,
            schema=schema,
            retries=self.retries,
            stats=self.stats,
        )
