"""Where a command's LLM calls go: `--llm local` (the SmolLM2 server, started and always stopped here) or a URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from metropolis.llm.endpoints import EndpointConfig, endpoint
from metropolis.llm.local_server import LocalModelServer


def check_llm_spec(spec: str) -> None:
    if spec != "local" and not spec.startswith(("http://", "https://")):
        raise ValueError(f"--llm must be 'local' or an http(s) URL of an OpenAI-compatible server, got {spec!r}")


@contextlib.contextmanager
def llm_endpoint(spec: str, kind: str, model: str, **overrides: object) -> Iterator[EndpointConfig]:
    """`spec` is "local" or the base URL of an OpenAI-compatible server (e.g. http://host:8000/v1)."""
    check_llm_spec(spec)
    if spec == "local":
        with LocalModelServer() as server:
            yield server.endpoint(**overrides)
        return
    yield endpoint(kind, spec.rstrip("/"), model, **overrides)
