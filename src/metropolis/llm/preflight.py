"""Before a run starts: is there an OpenAI-compatible server at this URL, and does it take our key?

One `GET /models` with a short timeout answers it in seconds, where the first chat call would fail only after
every retry (minutes) and after the run folder was made. Each way it can fail is one line naming the URL:
- a URL that cannot be a URL (port 99999, no host): ValueError (bad input);
- nothing answers (refused, DNS, https against an http server, timeout): LLMUnavailable;
- 401/403: LLMRejected (the key); 5xx: LLMUnavailable; any other status or a body that is not JSON: LLMRejected
  ("not an OpenAI-compatible server").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from metropolis.llm.api_key import read_api_key
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.errors import LLMRejected, LLMUnavailable


def check_url(url: str, option: str = "--llm") -> str:
    """`url` if it is an http(s) URL with a host and a valid port, else a one-line ValueError."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port out of range or not a number
    except ValueError as error:
        raise ValueError(f"{option} {url!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{option} must be an http(s) URL with a host, such as http://host:8000/v1, got {url!r}")
    if port == 0:
        raise ValueError(f"{option} {url!r}: port 0 is not a server's port")
    return url


def models_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"


def check_endpoint(cfg: EndpointConfig, timeout: float = 10.0, env: Mapping[str, str] | None = None) -> None:
    """Raise unless `GET /models` at `cfg` answers 200 with JSON within `timeout` seconds."""
    check_url(cfg.base_url)
    key = read_api_key(cfg.api_key_env, os.environ if env is None else env)
    url = models_url(cfg.base_url)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, cfg.connect_timeout))) as http:
            response = http.get(url, headers=headers)
    except httpx.TimeoutException:
        raise LLMUnavailable(f"no answer from {url} within {timeout:g} s; is the server up?", attempts=1) from None
    except httpx.HTTPError as error:
        hint = _hint(cfg.base_url, error)
        raise LLMUnavailable(f"cannot reach {url}: {type(error).__name__}: {error}{hint}", attempts=1) from None
    status = response.status_code
    if status in (401, 403):
        where = f"${cfg.api_key_env}" if cfg.api_key_env else "no key (this server kind sends none)"
        raise LLMRejected(f"{url} refused the API key (HTTP {status}); key from: {where}", status=status)
    if status >= 500:
        raise LLMUnavailable(f"{url} answered HTTP {status}: the server is in trouble; try again later", attempts=1)
    if status != 200 or not _json_object(response):
        raise LLMRejected(
            f"{url} answered HTTP {status} {_kind(response)}: not an OpenAI-compatible server "
            "(the base URL usually ends in /v1)",
            status=status,
        )


def _json_object(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False


def _kind(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    return f"({content_type or 'no content type'})"


def _hint(base_url: str, error: httpx.HTTPError) -> str:
    text = str(error).lower()
    if base_url.startswith("https://") and ("ssl" in text or "wrong version" in text or "record" in text):
        return " (an https URL for a server that speaks plain http? try http://)"
    if "name or service not known" in text or "nodename" in text or "name resolution" in text:
        return f" (no such host: {urlsplit(base_url).hostname})"
    return ""
