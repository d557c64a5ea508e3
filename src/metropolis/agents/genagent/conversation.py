"""Conversations: multi-turn, both sides speak, entirely inside the initiator's step.

The partner's lines are LLM calls made on the partner's behalf (`ctx.llm_for`), and the conversation is written
into both memories before the step ends, so every scheduler sees the same thing: the partner is in the
initiator's cluster, and nothing outside the cluster can read or write either of them during the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import metropolis.agents.genagent.prompts as prompts
from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.memory_stream import MemoryStream
from metropolis.agents.genagent.parsing import Asker, clean_sentence, extract_json, parse_int, parse_yes_no
from metropolis.agents.genagent.validation import LineCheck, greeting_for, is_farewell, is_greeting
from metropolis.engine.agent import StepContext


class GenerativeAgent(Protocol):
    """What a conversation needs of each side (the `GenerativeAgent` of agent.py, which imports this module)."""

    name: str
    identity: str
    config: GenAgentConfig
    memory: MemoryStream
    chatting_with: str | None
    chat_until_step: int | None
    last_chat: dict[str, float]

    def asker(self, ctx: StepContext, speaker: Any) -> Asker: ...

    def clock_text(self, now: float) -> str: ...


def parse_line(text: str) -> tuple[str, bool] | None:
    """(utterance, end) from JSON, or the first non-empty line of prose."""
    value = extract_json(text)
    if isinstance(value, dict):
        line = value.get("utterance") or next((v for v in value.values() if isinstance(v, str)), None)
        if isinstance(line, str) and clean_sentence(line):
            return clean_sentence(line, 160), bool(value.get("end", False))
    if value is None:
        for raw in text.splitlines():
            line = clean_sentence(raw.split(":", 1)[-1] if raw[:20].count(":") == 1 else raw, 160)
            if line and not line.startswith(("{", "[")):
                return line, False
    return None


def line_parser(check: LineCheck) -> Callable[[str], tuple[str, bool] | None]:
    """`parse_line`, then `check`: a line the speaker could not say here is no answer (the ask loop retries)."""

    def parse(text: str) -> tuple[str, bool] | None:
        if check.spoken_by_other(text):
            return None
        parsed = parse_line(text)
        line = check(parsed[0]) if parsed is not None else ""
        return (line, parsed[1]) if parsed is not None and line else None

    return parse


def fallback_line(listener: str, turn: int, last: bool, hour: int) -> str:
    first = listener.split()[0]
    if last:
        return f"It was nice talking to you, {first}. See you later!"
    if turn == 0:
        return f"{greeting_for(hour)}, {first}! How are you today?"
    return "I'm doing well, thanks. Busy day ahead."


def frame_line(line: str, listener: str, opening: bool, closing: bool, hour: int) -> str:
    """The opening line greets the partner and the closing line says goodbye, whatever the model wrote."""
    first = listener.split()[0]
    if opening and not is_greeting(line):
        line = f"{greeting_for(hour)}, {first}! {line}"
    if closing and not is_farewell(line):
        line = f"{line} See you later, {first}!"
    return line


async def want_to_talk(me: GenerativeAgent, ctx: StepContext, other: GenerativeAgent, other_action: str) -> bool:
    memories = [m.text for m in me.memory.retrieve(other.name, ctx.time_of_day, me.config.retrieval_k)]
    return await me.asker(ctx, me)(
        "decide_to_talk",
        prompts.decide_to_talk(me.identity, other.name, other_action, me.clock_text(ctx.time_of_day), memories),
        parse_yes_no,
        False,
        max_tokens=me.config.tokens_choice,
        schema=prompts.SCHEMA_YES_NO,
    )


async def converse(me: GenerativeAgent, ctx: StepContext, other: GenerativeAgent) -> list[tuple[str, str]]:
    """Alternate lines, initiator first, up to `conversation_max_turns` rounds; both remember it."""
    cfg, now = me.config, ctx.time_of_day
    situation = f"It is {me.clock_text(now)}. {me.name} and {other.name} meet and talk."
    lines: list[tuple[str, str]] = []
    ended = False
    for turn in range(cfg.conversation_max_turns):
        for speaker, listener in ((me, other), (other, me)):
            last = turn == cfg.conversation_max_turns - 1 and speaker is other
            line, end = await _next_line(ctx, speaker, listener, situation, lines, turn, last)
            lines.append((speaker.name, line))
            ctx.say(f"{speaker.name}: {line}")
            if end and turn > 0:
                ended = True
                break
        if ended:
            break
    await _remember(me, ctx, other, lines)
    return lines


async def _next_line(
    ctx: StepContext,
    speaker: GenerativeAgent,
    listener: GenerativeAgent,
    situation: str,
    lines: list[tuple[str, str]],
    turn: int,
    last: bool,
) -> tuple[str, bool]:
    """One checked line; the opening one greets, the one that ends the conversation says goodbye."""
    cfg, now = speaker.config, ctx.time_of_day
    hour, opening = int(now % 86400 // 3600), not lines
    memories = [m.text for m in speaker.memory.retrieve(listener.name, now, cfg.retrieval_k)]
    check = LineCheck(speaker.name, listener.name, tuple(t for _, t in lines), opening)
    line, end = await speaker.asker(ctx, speaker)(
        "conversation",
        prompts.utterance(
            speaker.identity, listener.name, situation, memories, [f"{s}: {t}" for s, t in lines], opening, last
        ),
        line_parser(check),
        (fallback_line(listener.name, turn, last, hour), last),
        max_tokens=cfg.tokens_line,
        schema=prompts.SCHEMA_LINE,
    )
    closing = last or (end and turn > 0)
    return frame_line(line, listener.name, opening, closing, hour), end


async def _remember(
    me: GenerativeAgent, ctx: StepContext, other: GenerativeAgent, lines: list[tuple[str, str]]
) -> None:
    now = ctx.time_of_day
    text = clean_sentence(f"{me.name} and {other.name} talked. " + " ".join(f"{s}: {t}" for s, t in lines), 400)
    score: Any = await me.asker(ctx, me)(
        "chat_importance",
        prompts.importance(me.identity, text),
        lambda t: parse_int(t, 1, 10),
        4,
        max_tokens=me.config.tokens_score,
        schema=prompts.SCHEMA_SCORE,
    )
    until = ctx.step + 1 + len(lines) * me.config.steps_per_chat_line
    for agent, partner in ((me, other), (other, me)):
        agent.memory.add("chat", text, now, int(score))
        agent.chatting_with = partner.name
        agent.chat_until_step = until
        agent.last_chat[partner.name] = now
