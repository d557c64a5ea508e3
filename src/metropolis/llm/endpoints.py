"""Where an OpenAI-compatible server lives and which dialect of the API it speaks.

The servers agree on `/v1/chat/completions` but differ in the details that matter to us (kind in brackets):
- vLLM [vllm], launched with `--scheduling-policy priority`: `priority` in the body, lower value served first;
  structured output as `response_format: {type: json_schema, json_schema: {name, schema}}`.
- SGLang [sglang], launched with `--enable-priority-scheduling`: `priority`, *higher* value first unless it
  runs with `--schedule-low-priority-values-first` (then pass `priority_order="low_first"`); `json_schema`.
- llama.cpp's C++ `llama-server` [llama.cpp]: ignores `priority`; `json_schema` (also `json_object` + schema).
- llama-cpp-python's server [llama-cpp-python]: drops unknown fields such as `priority`; structured output
  only as `{type: json_object, schema: ...}`; a `json_schema` request is answered with HTTP 500 (so retried).
- Ollama's `/v1` [ollama]: ignores `priority`; `json_schema`.
- OpenAI [openai]: rejects unknown fields with HTTP 400, so `priority` is never sent; `json_schema`.

A profile per server sets `send_priority`, `priority_order` and `schema_style`; `endpoint(kind, ...)` builds
one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

SchemaStyle = Literal["json_schema", "json_object"]
PriorityOrder = Literal["low_first", "high_first"]


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """One OpenAI-compatible endpoint and how to talk to it.

    `api_key_env` names the environment variable holding the key (None: send no key); the key itself is never
    stored here, so a config can be printed, logged and saved. `max_in_flight` bounds concurrent requests from
    one
    client; `max_connections` (None: same as `max_in_flight`) bounds its TCP connections. `admit_per_tick` keeps
    thousands of requests in flight from stalling the event loop (see `llm/transport.py`).
    """

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    max_in_flight: int = 64
    max_connections: int | None = None
    admit_per_tick: int = 8
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    send_priority: bool = False
    priority_order: PriorityOrder = "low_first"
    send_user: bool = True
    schema_style: SchemaStyle = "json_schema"
    name: str = ""

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        positive = (
            "max_in_flight",
            "max_attempts",
            "connect_timeout",
            "read_timeout",
            "admit_per_tick",
        )
        for field in positive:
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be > 0, got {getattr(self, field)}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1 or None, got {self.max_connections}")
        for field in ("backoff_base", "backoff_max", "max_retry_after"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field} must be >= 0, got {getattr(self, field)}")
        if self.schema_style not in ("json_schema", "json_object"):
            raise ValueError(f"schema_style must be 'json_schema' or 'json_object', got {self.schema_style!r}")
        if self.priority_order not in ("low_first", "high_first"):
            raise ValueError(f"priority_order must be 'low_first' or 'high_first', got {self.priority_order!r}")

    @property
    def url(self) -> str:
        """The chat completions URL; `base_url` may or may not end in `/v1`."""
        base = self.base_url.rstrip("/")
        return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"

    @property
    def label(self) -> str:
        """How responses name this endpoint: the given name, else the base URL."""
        return self.name or self.base_url.rstrip("/")

    def priority_value(self, step: int) -> int:
        """The body's `priority` for a request of priority `step` (`LLMRequest.priority`: the step, or far below
        it for the interactive class): lowest first, in the server's own order. Servers without a priority field
        (llama.cpp, Ollama, OpenAI) get nothing: there the interactive class cannot jump the server's queue."""
        return step if self.priority_order == "low_first" else -step

    def response_format(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        """The `response_format` field asking for JSON that matches `schema`, in this server's dialect."""
        if self.schema_style == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


_PROFILES: dict[str, dict[str, Any]] = {
    "openai": {"send_priority": False, "schema_style": "json_schema"},
    "vllm": {"send_priority": True, "priority_order": "low_first", "schema_style": "json_schema"},
    "sglang": {"send_priority": True, "priority_order": "high_first", "schema_style": "json_schema"},
    "llama.cpp": {"send_priority": False, "schema_style": "json_schema", "api_key_env": None},
    "llama-cpp-python": {"send_priority": False, "schema_style": "json_object", "api_key_env": None},
    "ollama": {"send_priority": False, "schema_style": "json_schema", "api_key_env": None},
}


def server_kinds() -> list[str]:
    return sorted(_PROFILES)


def endpoint(kind: str, base_url: str, model: str, **overrides: Any) -> EndpointConfig:
    """An `EndpointConfig` with the defaults of server `kind`; `overrides` win over the profile."""
    if kind not in _PROFILES:
        raise ValueError(f"unknown server kind {kind!r}; valid kinds: {', '.join(server_kinds())}")
    known = {f.name for f in dataclasses.fields(EndpointConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown endpoint option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    options = {**_PROFILES[kind], "name": kind, **overrides}
    return EndpointConfig(base_url=base_url, model=model, **options)
