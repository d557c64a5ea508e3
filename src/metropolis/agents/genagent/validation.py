"""Is this answer something a person does, or something a person says? Checks on the model's text.

A 135M model often answers with a name, a line of its own prompt, a memory it was shown ("You think you are
kind of cute"), or narration ("The conversation has just ended"). Parsing alone accepts those; these checks
turn them into "no answer", so the ask loop retries and then falls back to the persona's routine. Every check
is a pure function of the text and the persona, so replays decide the same way.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from metropolis.agents.genagent.parsing import clean_activity

_WORD = re.compile(r"[a-z']+")
# Words that end in -ing but are not something one is doing.
_ING_NOUNS = frozenset(
    "morning evening thing things something nothing anything everything building ceiling during king ring "
    "spring string wedding clothing living feeling".split()
)
# Second person, first person and words about the prompt itself: an activity is "having breakfast", never
# "making sure you're on the right track" or "writing the JSON schedule".
_META = frozenset(
    "you your you're yours yourself you've you'll i i'm i've i'll my me we we're our us conversation json "
    "prompt answer person subtask subtasks example".split()
)
_META_PHRASES = ("right track", "this person", "has ended", "is over", "just ended")
_COPY_RATIO = 0.8
_COPY_MIN_WORDS = 3


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def has_ing_verb(text: str, within: int = 3) -> bool:
    """A verb's -ing form among the first `within` words ("having breakfast", "quietly reading")."""
    return any(w.endswith("ing") and len(w) >= 5 and w not in _ING_NOUNS for w in words(text)[:within])


def is_copy(text: str, sources: Iterable[str]) -> bool:
    """`text` is (nearly) one of `sources`, or a run of at least three of its words."""
    low = " ".join(words(text))
    if not low:
        return False
    for source in sources:
        src = " ".join(words(source))
        if len(low.split()) >= _COPY_MIN_WORDS and low in src:
            return True
        if difflib.SequenceMatcher(None, low, src).ratio() >= _COPY_RATIO:
            return True
    return False


def name_words(names: Iterable[str]) -> frozenset[str]:
    """Every persona's full name and first name, lower case (a name is never an activity)."""
    out: set[str] = set()
    for name in names:
        low = " ".join(words(name))
        if low:
            out.update((low, low.split()[0]))
    return frozenset(out)


def mentions(text: str, names: frozenset[str]) -> bool:
    """Whether `text` names anyone of `names` (whole words, lower case)."""
    padded = f" {' '.join(words(text))} "
    return any(f" {n} " in padded for n in names)


@dataclass(frozen=True, slots=True)
class ActivityCheck:
    """Accepts "having breakfast"; rejects names, memories parroted back, meta text and verbless fragments.

    `__call__` returns the cleaned activity, or "" when the text is no activity (parsers read "" as no answer).
    """

    names: frozenset[str] = frozenset()
    copied: tuple[str, ...] = ()

    @classmethod
    def for_persona(cls, whispers: Iterable[str], names: Iterable[str]) -> ActivityCheck:
        return cls(name_words(names), tuple(whispers))

    def __call__(self, text: str, max_chars: int = 80) -> str:
        text = clean_activity(text, max_chars)
        if not text or not has_ing_verb(text) or mentions(text, self.names):
            return ""
        if set(words(text)) & _META or any(p in text.lower() for p in _META_PHRASES):
            return ""
        return "" if is_copy(text, self.copied) else text


_GREETING = re.compile(r"\b(?:hi|hello|hey|howdy|greetings|good (?:morning|afternoon|evening)|morning)\b", re.I)
_FAREWELL = re.compile(
    r"\b(?:bye|goodbye|good night|see you|see ya|talk (?:to you )?(?:later|soon)|take care|catch you later|"
    r"have a (?:good|nice|great|lovely) (?:day|one|morning|afternoon|evening))\b",
    re.I,
)
_NARRATION = ("conversation has", "conversation is", "conversation so far", "nobody has spoken", "this person")
_PREFIX = re.compile(r"^\s*([A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2})\s*:\s*(.+)$")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def is_greeting(line: str) -> bool:
    return _GREETING.search(line) is not None


def is_farewell(line: str) -> bool:
    return _FAREWELL.search(line) is not None


def greeting_for(hour: int) -> str:
    return "Good morning" if hour < 12 else "Good afternoon" if hour < 18 else "Good evening"


def echoes(line: str, said: Iterable[str]) -> bool:
    """The line repeats something already said: a whole earlier line, or one of its sentences of 3+ words."""
    low = " ".join(words(line))
    for earlier in said:
        if is_copy(line, [earlier]):
            return True
        for sentence in _SENTENCE.findall(earlier):
            part = " ".join(words(sentence))
            if len(part.split()) >= _COPY_MIN_WORDS and part in low:
                return True
    return False


@dataclass(frozen=True, slots=True)
class LineCheck:
    """Accepts a line `speaker` could say to `listener` at this point of the conversation, or returns "".

    Rejected: a bare name, narration about the conversation, a line spoken as someone else ("Latoya: ..." from
    Abigail) or addressed to the speaker's own name, an echo of an earlier line, and a farewell as the opening line.
    """

    speaker: str
    listener: str
    said: tuple[str, ...] = ()
    opening: bool = False

    def spoken_by_other(self, text: str) -> bool:
        """The text opens with someone else's name as the speaker ("Latoya Williams: ..." from Abigail)."""
        prefix = _PREFIX.match(text.strip().lstrip("{\"' "))
        return prefix is not None and " ".join(words(prefix.group(1))) not in name_words([self.speaker])

    def __call__(self, line: str) -> str:
        if self.spoken_by_other(line):
            return ""
        prefix = _PREFIX.match(line)
        line = prefix.group(2).strip() if prefix is not None else line
        low = line.lower()
        spoken = set(words(line)) - set(words(f"{self.speaker} {self.listener}"))
        if not spoken or any(n in low for n in _NARRATION) or mentions(line, frozenset([words(self.speaker)[0]])):
            return ""
        if self.opening and is_farewell(line):
            return ""
        return "" if echoes(line, self.said) else line
