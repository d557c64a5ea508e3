"""One async client for OpenAI-compatible servers (vLLM, SGLang, llama.cpp, Ollama, OpenAI) on aiohttp.

Why it looks the way it does:
- A simulation keeps hundreds to thousands of requests in flight, so the client is one `aiohttp.ClientSession`
  with a connector as wide as the in-flight bound (a semaphore), and nothing blocks the event loop. aiohttp,
  not httpx: a sixth of the CPU per request (`llm/transport.py`).
- A request cancelled (a speculative step undone, a run stopped) closes its connection, so vLLM and SGLang
  abort the generation.
- Transient faults (429, 5xx, timeouts, dropped connections, malformed bodies) are retried with exponential
  backoff and jitter from a passed-in generator; the server's Retry-After wins. Other 4xx are the caller's bug
  and fail at once, with the server's message.
- One logical request is one call in the books, however many attempts it took (`LLMResponse.attempts`). Every
  attempt carries the same `X-Request-Id` (a UUID: llama-cpp-python's server rejects any other form with 400),
  so a server or a proxy can deduplicate; `X-Metropolis-Request` says which call it is in words.
- The API key is read from an environment variable at construction and lives only in the request headers: it
  is
  never logged, never in `repr`, and scrubbed from every error message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import certifi

from metropolis.llm.accounting import Accounting
from metropolis.llm.api_key import read_api_key
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.errors import LLMRejected, LLMUnavailable
from metropolis.llm.retry import Backoff, is_retryable_status, retry_after
from metropolis.llm.transport import TickBudget
from metropolis.llm.types import LLMRequest, LLMResponse, estimate_tokens

log = logging.getLogger(__name__)

# Faults worth another attempt: the server or the network may do better next time.
TRANSIENT_ERRORS = (
    TimeoutError,  # aiohttp's connect and read timeouts are TimeoutErrors
    aiohttp.ClientConnectionError,  # refused, reset, closed mid-answer
    aiohttp.ClientPayloadError,  # a body cut short or badly encoded
    aiohttp.ClientResponseError,  # a malformed HTTP answer
)

AGENT_HEADER = "X-Metropolis-Agent"
STEP_HEADER = "X-Metropolis-Step"
REQUEST_ID_HEADER = "X-Request-Id"
LABEL_HEADER = "X-Metropolis-Request"
# Request ids are UUIDs derived from the call's label, so a run's ids repeat when the run does.
_ID_NAMESPACE = uuid.UUID("6f1e3c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b")


class _Malformed(Exception):
    """A 2xx answer whose body is not a chat completion."""


class OpenAIClient:
    """An `LLMBackend` for one OpenAI-compatible endpoint. Use it in one event loop; close it when done."""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        accounting: Accounting | None = None,
        env: Mapping[str, str] | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.on_retry = on_retry
        self.accounting = accounting if accounting is not None else Accounting()
        self._rng = rng if rng is not None else random.Random(0)
        self._clock = clock
        self._backoff = Backoff(config.backoff_base, config.backoff_max, config.max_retry_after)
        self._limit = asyncio.Semaphore(config.max_in_flight)
        self._ids = itertools.count()
        self._key = read_api_key(config.api_key_env, os.environ if env is None else env)
        self._budget = TickBudget(config.admit_per_tick)
        self._session: aiohttp.ClientSession | None = None  # made in the event loop, on the first request
        self._closed = False

    def __repr__(self) -> str:
        key = "set" if self._key else "not set"
        return f"OpenAIClient({self.config.label!r}, model={self.config.model!r}, api key {key})"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            cfg = self.config
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=cfg.max_connections or cfg.max_in_flight,
                    ssl=ssl.create_default_context(cafile=certifi.where()),
                ),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout, sock_read=cfg.read_timeout),
                headers={"Authorization": f"Bearer {self._key}"} if self._key else None,
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the backend -----------------------------------------------------------------------------------------

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer one logical request; `start`/`end` span its attempts, from when it got an in-flight slot."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed; create a new client")
        label = f"{next(self._ids)}:{request.agent}:{request.step}:{request.function}"
        body = self.body(request)
        headers = self.headers(request, label)
        async with self._limit:
            start = self._clock()
            reply, attempts = await self._send(request, body, headers)
            end = self._clock()
        text, prompt_tokens, completion_tokens = _read_reply(reply, request)
        response = LLMResponse(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            start=start,
            end=end,
            endpoint=self.config.label,
            attempts=attempts,
        )
        self.accounting.record(request, response)
        return response

    def body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body of `request` in this endpoint's dialect."""
        cfg = self.config
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": [dict(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if cfg.send_user:
            body["user"] = request.agent
        if cfg.send_priority:
            body["priority"] = cfg.priority_value(request.priority)  # interactive: ahead of every step
        if request.json_schema is not None:
            body["response_format"] = cfg.response_format(request.json_schema, _schema_name(request.function))
        return body

    def headers(self, request: LLMRequest, label: str) -> dict[str, str]:
        """Per-request headers (the key is a client default); values are percent-encoded to stay ASCII."""
        return {
            AGENT_HEADER: quote(request.agent, safe=" "),
            STEP_HEADER: str(request.step),
            REQUEST_ID_HEADER: str(uuid.uuid5(_ID_NAMESPACE, label)),
            LABEL_HEADER: quote(label, safe=" :"),
        }

    async def _send(
        self, request: LLMRequest, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[dict[str, Any], int]:
        """Attempt until a well-formed answer; returns it with the number of attempts it took."""
        cfg, reasons = self.config, []
        for attempt in range(1, cfg.max_attempts + 1):
            wait: float | None = None
            try:
                await self._budget.admit()
                async with self._http().post(cfg.url, json=body, headers=headers) as response:
                    status, content = response.status, await response.read()
                if 200 <= status < 300:
                    return _parse(content), attempt
                if not is_retryable_status(status):
                    raise self._rejected(request, status, content)
                wait = retry_after(response.headers)
                reason = f"HTTP {status}"
            except TRANSIENT_ERRORS as error:
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            except _Malformed as error:
                reason = f"malformed body: {error}"
            reasons.append(self._scrub(reason))
            if attempt < cfg.max_attempts:
                delay = self._backoff.delay(attempt, self._rng, wait)
                log.info(
                    "%s: %s step %d attempt %d failed (%s); retry in %.2f s",
                    cfg.label,
                    request.agent,
                    request.step,
                    attempt,
                    reasons[-1],
                    delay,
                )
                if self.on_retry is not None:
                    self.on_retry(f"{reasons[-1][:80]} ({request.agent} step {request.step}, attempt {attempt})")
                await asyncio.sleep(delay)
        self.accounting.record_failure(request, cfg.max_attempts)
        raise LLMUnavailable(
            f"{cfg.label}: {request.function} of {request.agent} at step {request.step} failed "
            f"{cfg.max_attempts} times; last errors: {'; '.join(reasons[-3:])}",
            attempts=cfg.max_attempts,
        )

    def _rejected(self, request: LLMRequest, status: int, content: bytes) -> LLMRejected:
        self.accounting.record_failure(request, 1)
        detail = self._scrub(content.decode("utf-8", "replace")[-500:].strip())
        return LLMRejected(
            f"{self.config.label} rejected {request.function} of {request.agent} at step {request.step} with "
            f"HTTP {status} (not retried; fix the request or the endpoint config): {detail}",
            status=status,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _schema_name(function: str) -> str:
    """OpenAI wants `json_schema.name` to match ^[a-zA-Z0-9_-]{1,64}$."""
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in function)[:64]
    return name or "response"


def _parse(content: bytes) -> dict[str, Any]:
    """The body as a chat completion with at least one choice carrying text content, or _Malformed."""
    try:
        reply = json.loads(content)
    except (ValueError, UnicodeDecodeError) as error:
        raise _Malformed(f"invalid JSON ({error})") from None
    if not isinstance(reply, dict):
        raise _Malformed(f"expected a JSON object, got {type(reply).__name__}")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Malformed("no choices")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise _Malformed("choices[0].message.content is not a string")
    return reply


def _read_reply(reply: dict[str, Any], request: LLMRequest) -> tuple[str, int, int]:
    """Text and token counts; counts the server left out are estimated from the text."""
    text: str = reply["choices"][0]["message"]["content"]
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int):
        prompt = estimate_tokens(request.prompt_text())
    if not isinstance(completion, int):
        completion = estimate_tokens(text) if text else 0
    return text, prompt, completion
