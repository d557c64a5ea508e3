"""Importer for the Generative Agents LLM-call export (`genagents-trace/redis_data.json`).

Each key is `persona:step:function:start_time` and each value a record of string fields. Keys of any other
shape (the export holds a stray `run`) are not calls: they are skipped and listed in the metadata. Function
names carry a numeric suffix in some call sites (`run_gpt_prompt_generate_hourly_schedule_0`); the trace keeps
the canonical name without it. Agent ids are the positions of the persona names in sorted order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from metropolis.trace.jsonrecords import as_float, as_int, get_field, in_file, iter_records, read_text
from metropolis.trace.schema import CALLS_SCHEMA, TraceMeta
from metropolis.trace.store import Trace
from metropolis.trace.tokens import TokenCounter, make_counter

SOURCE = "genagents-redis"
_SUFFIX = re.compile(r"_\d+$")


def canonical_function(name: str) -> str:
    """`run_gpt_prompt_daily_plan_0` -> `run_gpt_prompt_daily_plan`."""
    return _SUFFIX.sub("", name)


def is_call_key(key: str) -> bool:
    return key.count(":") >= 3


@dataclass(frozen=True, slots=True)
class RawCall:
    """One call as the export has it, checked and typed."""

    persona: str
    step: int
    function: str
    start: float
    end: float
    prompt: str
    output: str
    max_tokens: int
    model: str


def parse_call(key: str, record: object) -> RawCall:
    where = f"record {key!r}"

    def text(name: str) -> str:
        value = get_field(record, name, where)
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {name!r} should be a string, found {type(value).__name__}")
        return value

    call = RawCall(
        persona=text("persona_name"),
        step=as_int(get_field(record, "step", where), where, "step"),
        function=text("function_name"),
        start=as_float(get_field(record, "start_time", where), where, "start_time"),
        end=as_float(get_field(record, "end_time", where), where, "end_time"),
        prompt=text("input"),
        output=text("output"),
        max_tokens=as_int(get_field(record, "max_token", where), where, "max_token"),
        model=text("model_name"),
    )
    if call.end < call.start:
        raise ValueError(f"{where}: end_time {call.end} is before start_time {call.start}")
    if call.step < 0:
        raise ValueError(f"{where}: step {call.step} is negative")
    return call


def read_calls(path: Path) -> tuple[list[RawCall], list[str]]:
    """The calls of the export, in time order, and the keys skipped as not being calls."""
    calls: list[RawCall] = []
    skipped: list[str] = []
    for key, record in iter_records(read_text(path), str(path)):
        if not is_call_key(key):
            skipped.append(key)
            continue
        with in_file(path):
            calls.append(parse_call(key, record))
    calls.sort(key=lambda c: (c.start, c.persona))
    return calls, skipped


def import_genagents(path: Path | str, counter: TokenCounter | None = None, keep_text: bool = True) -> Trace:
    """The export as a trace of calls (no steps); `meta.extra` lists the skipped keys and the tokenizer."""
    path = Path(path)
    calls, skipped = read_calls(path)
    if not calls:
        raise ValueError(f"{path}: no LLM-call records (keys shaped persona:step:function:start_time)")
    counter = counter or make_counter()
    names = sorted({c.persona for c in calls})
    ids = {name: i for i, name in enumerate(names)}
    columns = {
        "agent": [ids[c.persona] for c in calls],
        "name": [c.persona for c in calls],
        "step": [c.step for c in calls],
        "function": [canonical_function(c.function) for c in calls],
        "prompt_tokens": [counter.count(c.prompt) for c in calls],
        "output_tokens": [counter.count(c.output) for c in calls],
        "prompt_chars": [len(c.prompt) for c in calls],
        "output_chars": [len(c.output) for c in calls],
        "max_tokens": [c.max_tokens for c in calls],
        "prompt": [c.prompt if keep_text else None for c in calls],
        "output": [c.output if keep_text else None for c in calls],
        "start": [c.start for c in calls],
        "end": [c.end for c in calls],
        "endpoint": [None] * len(calls),
    }
    meta = TraceMeta(
        source=SOURCE,
        agent_names=names,
        run_id=path.name,
        extra={
            "file": str(path),
            "tokenizer": counter.name,
            "skipped_keys": skipped,
            "model_name_recorded": sorted({c.model for c in calls}),
        },
    )
    return Trace.of(meta, calls=pa.Table.from_pydict(columns, schema=CALLS_SCHEMA).to_pandas())
