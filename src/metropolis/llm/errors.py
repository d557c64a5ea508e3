"""Why an LLM request failed, as the engine sees it: rejected for good, or given up after retries."""

from __future__ import annotations


class LLMError(RuntimeError):
    """An LLM request did not produce a response."""


class LLMRejected(LLMError):
    """The server refused the request (HTTP 4xx other than 408/429): retrying cannot help; fix the request."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class LLMUnavailable(LLMError):
    """Every attempt failed with a transient fault (timeouts, 429, 5xx, resets, malformed bodies)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
