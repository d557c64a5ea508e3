"""When to try an LLM request again: exponential backoff with jitter, and the server's own Retry-After."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# 408 and 429 are the 4xx statuses that say "later", not "never".
RETRY_STATUSES = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt `n` (1-based) that failed waits `base * 2**(n-1)`, capped at `cap`, with equal jitter.

    Equal jitter (half fixed, half random) keeps clients that failed together from retrying together without
    ever retrying at once. A server's Retry-After replaces the fixed half, capped at `max_retry_after`.
    """

    base: float
    cap: float
    max_retry_after: float

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        step = min(self.cap, self.base * 2 ** (attempt - 1))
        if retry_after is not None:
            return min(retry_after, self.max_retry_after) + rng.uniform(0.0, self.base)
        return step / 2 + rng.uniform(0.0, step / 2)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header (of a response's case-insensitive `headers`) in seconds, or None if absent or
    unreadable.

    Delta-seconds are read leniently (fractions allowed, as some servers send them). An HTTP-date is measured
    against the response's own Date header, so no local wall clock is read; without a Date header it is
    ignored.
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _date_delta(value, headers.get("date"))
    return seconds if seconds >= 0 else None


def _date_delta(value: str, date: str | None) -> float | None:
    if date is None:
        return None
    try:
        delta = (parsedate_to_datetime(value) - parsedate_to_datetime(date)).total_seconds()
    except (TypeError, ValueError):
        return None
    return max(0.0, delta)
