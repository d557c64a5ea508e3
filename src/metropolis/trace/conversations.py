"""Conversations in a Generative Agents movement log.

A persona in a conversation carries the whole chat (every `[speaker, utterance]`, written in the initiator's
step) for as many steps as the talk lasts, on both sides. A run of steps where one agent carries the same chat
is a `ChatRun`; the runs of the same chat that overlap or touch are one conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from metropolis.trace.schema import CONVERSATIONS_SCHEMA

Chat = tuple[tuple[str, str], ...]
_PERSONA_TARGET = re.compile(r"@\s*<persona>\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class ChatRun:
    """Agent `agent` carries chat `chat` from step `start` to step `end` (inclusive)."""

    agent: int
    start: int
    end: int
    chat: int
    participants: tuple[int, ...]
    lines: Chat


def runs_of(column: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) inclusive of each run of equal values in a 1-D array."""
    cuts = np.flatnonzero(np.diff(column) != 0) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(column)]]) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def chat_runs(
    chat: np.ndarray, description: np.ndarray, descriptions: list[str], chats: list[Chat], names: list[str]
) -> list[ChatRun]:
    """Every run of a chat, per agent; participants: the speakers, the agent, and the `<persona>` target."""
    ids = {name: i for i, name in enumerate(names)}
    runs = []
    for agent in range(chat.shape[1]):
        for start, end in runs_of(chat[:, agent]):
            cid = int(chat[start, agent])
            if cid == 0:
                continue
            where = f"step {start}, persona {names[agent]!r}"
            who = {agent}
            for speaker, _ in chats[cid]:
                if speaker not in ids:
                    raise ValueError(f"{where}: chat speaker {speaker!r} is not a persona of this log")
                who.add(ids[speaker])
            target = _PERSONA_TARGET.search(descriptions[int(description[start, agent])])
            if target and target.group(1) in ids:
                who.add(ids[target.group(1)])
            runs.append(ChatRun(agent, start, end, cid, tuple(sorted(who)), chats[cid]))
    return runs


@dataclass(slots=True)
class Conversation:
    start: int
    end: int
    participants: set[int]
    lines: Chat


def merge_runs(runs: list[ChatRun]) -> list[Conversation]:
    """One conversation per chat and overlapping (or adjacent) span of steps, in order of start."""
    merged: list[Conversation] = []
    last: dict[int, Conversation] = {}
    for run in sorted(runs, key=lambda r: (r.chat, r.start)):
        conv = last.get(run.chat)
        if conv is not None and run.start <= conv.end + 1:
            conv.end = max(conv.end, run.end)
            conv.participants.update(run.participants)
            continue
        conv = Conversation(run.start, run.end, set(run.participants), run.lines)
        last[run.chat] = conv
        merged.append(conv)
    merged.sort(key=lambda c: (c.start, sorted(c.participants)))
    return merged


def conversations_table(runs: list[ChatRun], names: list[str]) -> pa.Table:
    ids = {name: i for i, name in enumerate(names)}
    convs = merge_runs(runs)
    return pa.Table.from_pydict(
        {
            "conversation": list(range(len(convs))),
            "start": [c.start for c in convs],
            "end": [c.end for c in convs],
            "participants": [sorted(c.participants) for c in convs],
            "speakers": [[ids[s] for s, _ in c.lines] for c in convs],
            "utterances": [[u for _, u in c.lines] for c in convs],
        },
        schema=CONVERSATIONS_SCHEMA,
    )


def partner_matrix(runs: list[ChatRun], steps: int, agents: int) -> np.ndarray:
    """(steps, agents, agents) booleans: a talks with b at that step."""
    talking = np.zeros((steps, agents, agents), dtype=bool)
    for run in runs:
        others = [p for p in run.participants if p != run.agent]
        talking[run.start : run.end + 1, run.agent, others] = True
    return talking
