"""Where a command's LLM calls go: `--llm local` (the SmolLM2 server, started and always stopped here) or a URL.

A URL is checked before the command starts work (`GET /models`, a short timeout: `llm/preflight.py`), so an
unusable endpoint is one line in seconds, not a traceback after minutes of retries.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from metropolis.llm.api_key import plain_http_warning
from metropolis.llm.endpoints import EndpointConfig, endpoint, server_kinds
from metropolis.llm.local_server import LocalModelServer
from metropolis.llm.preflight import check_endpoint, check_url
from metropolis.registry import check_name

PREFLIGHT_TIMEOUT = 10.0


def check_llm_spec(spec: str, kind: str | None = None) -> None:
    """`--llm` is "local" or a valid http(s) URL; `--kind` a known server kind."""
    if spec != "local" and not spec.startswith(("http://", "https://")):
        raise ValueError(f"--llm must be 'local' or an http(s) URL of an OpenAI-compatible server, got {spec!r}")
    if spec != "local":
        check_url(spec)
    if kind is not None:
        check_name(kind, server_kinds(), "--kind")


@contextlib.contextmanager
def llm_endpoint(spec: str, kind: str, model: str, **overrides: object) -> Iterator[EndpointConfig]:
    """`spec` is "local" or the base URL of an OpenAI-compatible server (e.g. http://host:8000/v1)."""
    check_llm_spec(spec, kind)
    if spec == "local":
        with LocalModelServer() as server:
            yield server.endpoint(**overrides)
        return
    cfg = endpoint(kind, spec.rstrip("/"), model, **overrides)
    warning = plain_http_warning(cfg.base_url, cfg.api_key_env, os.environ)
    if warning:
        print(warning, file=sys.stderr)
    check_endpoint(cfg, timeout=min(PREFLIGHT_TIMEOUT, cfg.read_timeout))
    yield cfg
