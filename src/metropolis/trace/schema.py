"""The typed, columnar layout of a trace: the Arrow schemas of its tables and its JSON metadata.

Strings that repeat (names, functions, actions, endpoints) are dictionary-encoded, so a day of 25 agents stays
a few megabytes. Columns a source cannot know are nullable (an imported movement log has no wall-clock times;
an engine run has no `max_tokens`) and hold null, never a sentinel.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

FORMAT_VERSION = 1

_DICT_STR = pa.dictionary(pa.int32(), pa.string())
_IDS = pa.list_(pa.int32())

CALLS_SCHEMA = pa.schema(
    [
        pa.field("agent", pa.int32(), nullable=False),
        pa.field("name", _DICT_STR, nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("function", _DICT_STR, nullable=False),
        pa.field("prompt_tokens", pa.int32(), nullable=False),
        pa.field("output_tokens", pa.int32(), nullable=False),
        pa.field("prompt_chars", pa.int32()),
        pa.field("output_chars", pa.int32()),
        pa.field("max_tokens", pa.int32()),
        pa.field("prompt", pa.large_string()),
        pa.field("output", pa.large_string()),
        pa.field("start", pa.float64()),
        pa.field("end", pa.float64()),
        pa.field("endpoint", _DICT_STR),
    ]
)

STEPS_SCHEMA = pa.schema(
    [
        pa.field("agent", pa.int32(), nullable=False),
        pa.field("name", _DICT_STR, nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("x", pa.int32(), nullable=False),
        pa.field("y", pa.int32(), nullable=False),
        pa.field("action", _DICT_STR, nullable=False),
        pa.field("events", pa.list_(pa.string())),
        pa.field("observed", _IDS),
        pa.field("partners", _IDS),
        pa.field("llm_calls", pa.int32()),
        pa.field("start", pa.float64()),
        pa.field("end", pa.float64()),
        pa.field("plan_next", pa.int32()),  # the step of the agent's next planned call, as its plan says
        # The scheduler's view, for the viewer's scheduler layer: the work unit (cluster) that ran the step, by
        # dispatch order, and GVT (the slowest agent's step) when that unit was dispatched.
        pa.field("unit", pa.int32()),
        pa.field("gvt", pa.int32()),
        # Under the `speculative` policy: whether the step ran ahead of its blockers (and was validated), and how
        # many runs of it were undone before it committed (false and 0 under the other policies).
        pa.field("speculative", pa.bool_()),
        pa.field("undone", pa.int32()),
    ]
)

# One row per conversation: steps `start`..`end` (inclusive) and who said what, in order.
CONVERSATIONS_SCHEMA = pa.schema(
    [
        pa.field("conversation", pa.int32(), nullable=False),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("participants", _IDS, nullable=False),
        pa.field("speakers", _IDS, nullable=False),
        pa.field("utterances", pa.list_(pa.string()), nullable=False),
    ]
)

# Columns added after traces were first written: a writer may leave them out and an old file may lack them; both
# read as null.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"steps": ("plan_next", "unit", "gvt", "speculative", "undone")}

TABLES: dict[str, pa.Schema] = {
    "calls": CALLS_SCHEMA,
    "steps": STEPS_SCHEMA,
    "conversations": CONVERSATIONS_SCHEMA,
}


@dataclass(slots=True)
class TraceMeta:
    """What the tables do not say: where the trace came from and how to read its steps as time."""

    source: str
    agent_names: list[str]
    seconds_per_step: float = 10.0
    start_seconds: float = 0.0
    run_id: str | None = None
    scheduler: str | None = None
    world: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.seconds_per_step <= 0:
            raise ValueError(f"trace metadata: seconds_per_step must be > 0, got {self.seconds_per_step}")
        if len(set(self.agent_names)) != len(self.agent_names):
            raise ValueError("trace metadata: agent_names must be unique")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, where: Path | str = "meta.json") -> TraceMeta:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg} at line {error.lineno})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, found {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown fields {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for required in ("source", "agent_names"):
            if required not in data:
                raise ValueError(f"{where}: missing field {required!r}")
        if data.get("version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(f"{where}: trace format version {data['version']} is newer than {FORMAT_VERSION}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"{where}: {error}") from None
