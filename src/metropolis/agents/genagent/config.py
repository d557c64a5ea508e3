"""Every limit of the generative agent in one validated record: calls cost about a second each on a CPU."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class GenAgentConfig:
    """Defaults keep a 3-agent hour within a few hundred calls of a small local model."""

    default_wake_hour: int = 7
    default_sleep_hour: int = 23
    max_retries: int = 1
    retry_temperature: float = 0.7  # a retry after a rejected answer samples, instead of repeating it word for word
    max_daily_plan_items: int = 6
    schedule_horizon_hours: int = 4
    max_subtasks: int = 5
    max_place_options: int = 4
    min_subtask_minutes: int = 5
    conversation_max_turns: int = 3
    steps_per_chat_line: int = 2
    chat_cooldown_minutes: int = 60
    retrieval_k: int = 4
    recency_weight: float = 1.0
    importance_weight: float = 1.0
    relevance_weight: float = 1.0
    recency_decay_per_minute: float = 0.995
    reflection_threshold: int = 40
    reflection_insights: int = 2
    tokens_plan: int = 140
    tokens_schedule: int = 200
    tokens_decompose: int = 160
    tokens_choice: int = 32
    tokens_line: int = 64
    tokens_score: int = 16
    tokens_reflect: int = 120
    embedder: str = "auto"
    pick_personas: str = "first"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"genagent config: {f.name} must be >= 0, got {value}")
        for name in ("default_wake_hour", "default_sleep_hour"):
            if not 0 <= getattr(self, name) <= 24:
                raise ValueError(f"genagent config: {name} must be an hour within [0, 24]")
        if not 0.0 < self.recency_decay_per_minute <= 1.0:
            raise ValueError("genagent config: recency_decay_per_minute must be within (0, 1]")
        if self.pick_personas not in ("first", "random", "household"):
            raise ValueError(
                f"genagent config: pick_personas must be 'first', 'random' or 'household', got {self.pick_personas!r}"
            )
        if (
            self.schedule_horizon_hours < 1
            or self.max_subtasks < 1
            or self.min_subtask_minutes < 1
            or self.steps_per_chat_line < 1
        ):
            raise ValueError("genagent config: max_subtasks, min_subtask_minutes, steps_per_chat_line must be >= 1")

    @classmethod
    def from_pairs(cls, pairs: list[str]) -> GenAgentConfig:
        """Build from `key=value` strings (the command line's `--genagent key=value`)."""
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in types:
                raise ValueError(f"genagent option {pair!r}: expected key=value with key one of {', '.join(types)}")
            kind = types[key]
            try:
                values[key] = int(raw) if kind == "int" else float(raw) if kind == "float" else raw.strip()
            except ValueError:
                raise ValueError(f"genagent option {pair!r}: {key} takes a {kind}") from None
        return cls(**values)  # type: ignore[arg-type]
