"""Importer for the movement log of a Generative Agents run (`smallville/day_n3/master_movement.json`).

The log is sparse: `{step: {persona: {movement, pronunciatio, description, chat}}}`, a persona appearing only
at steps where something about it changed. The importer expands it to one row per agent per step (carrying the
last state forward), computes who observed whom (Euclidean distance within a radius R, the paper's 4 tiles by
default; the persona files say `vision_r = 8`) and extracts the conversations (see `conversations.py`). Row
`(s, a)` holds agent a's position and action as of step s, the agents within R of it at step s, and its
partners in a conversation at step s. The log has no timing, so `llm_calls`, `start` and `end` are null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from metropolis.trace.conversations import ChatRun, chat_runs, conversations_table, partner_matrix
from metropolis.trace.jsonrecords import as_int, get_field, in_file, iter_records, read_text
from metropolis.trace.schema import STEPS_SCHEMA, TraceMeta
from metropolis.trace.store import Trace

SOURCE = "genagents-movement"
Chat = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Change:
    """A persona's state from `step` on, until its next change."""

    step: int
    x: int
    y: int
    description: str
    chat: Chat | None


@dataclass(frozen=True, slots=True)
class DayInfo:
    """What the `meta.json` beside the log says (all optional)."""

    persona_names: list[str] | None = None
    seconds_per_step: float = 10.0
    world: str | None = None
    start_date: str | None = None


def parse_change(step: int, persona: str, record: object) -> Change:
    where = f"step {step}, persona {persona!r}"
    move = get_field(record, "movement", where)
    if not isinstance(move, list) or len(move) != 2:
        raise ValueError(f"{where}: movement should be [x, y], found {move!r}")
    description = get_field(record, "description", where)
    if not isinstance(description, str):
        raise ValueError(f"{where}: description should be a string, found {description!r}")
    get_field(record, "pronunciatio", where)
    return Change(
        step,
        as_int(move[0], where, "movement x"),
        as_int(move[1], where, "movement y"),
        description,
        parse_chat(get_field(record, "chat", where), where),
    )


def parse_chat(chat: Any, where: str) -> Chat | None:
    if chat is None:
        return None
    if not isinstance(chat, list):
        raise ValueError(f"{where}: chat should be a list of [speaker, utterance], found {type(chat).__name__}")
    lines = []
    for i, line in enumerate(chat):
        if not (isinstance(line, list) and len(line) == 2 and all(isinstance(v, str) for v in line)):
            raise ValueError(f"{where}: chat line {i} should be [speaker, utterance], found {line!r}")
        lines.append((line[0], line[1]))
    return tuple(lines)


def read_changes(path: Path) -> tuple[dict[str, list[Change]], int]:
    """Each persona's changes in step order, and the number of steps the log covers."""
    changes: dict[str, list[Change]] = {}
    last = -1
    for key, record in iter_records(read_text(path), str(path), what="step"):
        with in_file(path):
            step = as_int(key, f"step {key!r}", "key")
            if step < 0:
                raise ValueError(f"step {key!r}: negative step")
            if not isinstance(record, dict):
                raise ValueError(f"step {step}: expected an object of personas, found {type(record).__name__}")
            for persona, state in record.items():
                changes.setdefault(persona, []).append(parse_change(step, persona, state))
        last = max(last, step)
    if last < 0:
        raise ValueError(f"{path}: no steps")
    for persona, items in changes.items():
        items.sort(key=lambda c: c.step)
        if items[0].step != 0:
            raise ValueError(
                f"{path}: persona {persona!r} first appears at step {items[0].step}; its state at step 0 is unknown"
            )
    return changes, last + 1


def read_day_info(folder: Path) -> DayInfo:
    path = folder / "meta.json"
    if not path.exists():
        return DayInfo()
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    names = data.get("persona_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{path}: persona_names should be a list of names")
    spp = data.get("sec_per_step", 10)
    if not isinstance(spp, int | float) or isinstance(spp, bool) or spp <= 0:
        raise ValueError(f"{path}: sec_per_step should be a positive number, found {spp!r}")
    return DayInfo(names, float(spp), data.get("maze_name"), data.get("start_date"))


@dataclass(slots=True)
class DenseDay:
    """Arrays of shape (steps, agents): positions, description ids, chat ids (0 = no chat)."""

    names: list[str]
    x: np.ndarray
    y: np.ndarray
    description: np.ndarray
    descriptions: list[str]
    chat: np.ndarray
    chats: list[Chat]


def densify(changes: dict[str, list[Change]], names: list[str], steps: int) -> DenseDay:
    """Carry each persona's last change forward to every step."""
    shape = (steps, len(names))
    x, y = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    desc, chat = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    desc_ids: dict[str, int] = {}
    chat_ids: dict[Chat, int] = {}
    for a, name in enumerate(names):
        items = changes[name]
        at = np.searchsorted(np.array([c.step for c in items]), np.arange(steps), side="right") - 1
        x[:, a] = np.array([c.x for c in items])[at]
        y[:, a] = np.array([c.y for c in items])[at]
        desc[:, a] = np.array([desc_ids.setdefault(c.description, len(desc_ids)) for c in items])[at]
        ids = [0 if c.chat is None else chat_ids.setdefault(c.chat, len(chat_ids) + 1) for c in items]
        chat[:, a] = np.array(ids)[at]
    return DenseDay(names, x, y, desc, list(desc_ids), chat, [(), *chat_ids])


def within(day: DenseDay, radius: float) -> np.ndarray:
    """(steps, agents, agents) booleans: b is within `radius` of a at that step (never a itself)."""
    dx = day.x[:, :, None].astype(np.int64) - day.x[:, None, :]
    dy = day.y[:, :, None].astype(np.int64) - day.y[:, None, :]
    near = dx * dx + dy * dy <= radius * radius
    near[:, np.arange(len(day.names)), np.arange(len(day.names))] = False
    return near


def id_lists(matrix: np.ndarray) -> pa.ListArray:
    """Rows of a (steps, agents, agents) boolean matrix as list<int32> of the true columns, step-major."""
    flat = matrix.reshape(-1, matrix.shape[-1])
    rows, cols = np.nonzero(flat)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=flat.shape[0]))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(cols.astype(np.int32)))


def steps_table(day: DenseDay, observed: np.ndarray, partners: np.ndarray) -> pa.Table:
    steps, agents = day.x.shape
    n = steps * agents
    names = pa.DictionaryArray.from_arrays(
        pa.array(np.tile(np.arange(agents, dtype=np.int32), steps)), pa.array(day.names)
    )
    actions = pa.DictionaryArray.from_arrays(pa.array(day.description.reshape(-1)), pa.array(day.descriptions))
    nulls_i = pa.nulls(n, pa.int32())
    nulls_f = pa.nulls(n, pa.float64())
    columns = [
        pa.array(np.tile(np.arange(agents, dtype=np.int32), steps)),
        names,
        pa.array(np.repeat(np.arange(steps, dtype=np.int32), agents)),
        pa.array(day.x.reshape(-1)),
        pa.array(day.y.reshape(-1)),
        actions,
        pa.nulls(n, pa.list_(pa.string())),
        id_lists(observed),
        id_lists(partners),
        nulls_i,
        nulls_f,
        nulls_f,
        nulls_i,  # plan_next
        nulls_i,  # unit
        nulls_i,  # gvt
        pa.nulls(n, pa.bool_()),  # speculative
        nulls_i,  # undone
    ]
    return pa.Table.from_arrays(columns, schema=STEPS_SCHEMA)


def agent_order(changes: dict[str, list[Change]], info: DayInfo, path: Path) -> list[str]:
    if info.persona_names is None:
        return sorted(changes)
    unknown = sorted(set(changes) - set(info.persona_names))
    if unknown:
        raise ValueError(f"{path}: personas {', '.join(unknown)} are not in the persona_names of meta.json")
    return list(info.persona_names)


def import_movement(path: Path | str, radius: float = 4.0) -> Trace:
    """The log as a trace of dense agent-steps plus its conversations (no LLM calls)."""
    if radius < 0:
        raise ValueError(f"observation radius must be >= 0, got {radius}")
    path = Path(path)
    changes, steps = read_changes(path)
    info = read_day_info(path.parent)
    names = agent_order(changes, info, path)
    missing = [n for n in names if n not in changes]
    if missing:
        raise ValueError(f"{path}: personas {', '.join(missing)} of meta.json never appear in the log")
    day = densify(changes, names, steps)
    with in_file(path):
        runs: list[ChatRun] = chat_runs(day.chat, day.description, day.descriptions, day.chats, names)
    meta = TraceMeta(
        source=SOURCE,
        agent_names=names,
        seconds_per_step=info.seconds_per_step,
        run_id=path.parent.name,
        world=info.world,
        extra={"file": str(path), "start_date": info.start_date, "radius": radius, "metric": "euclidean"},
    )
    return Trace.of(
        meta,
        steps=steps_table(day, within(day, radius), partner_matrix(runs, steps, len(names))).to_pandas(),
        conversations=conversations_table(runs, names).to_pandas(),
    )
