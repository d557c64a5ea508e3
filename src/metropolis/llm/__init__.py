"""The LLM layer: request records, real OpenAI-compatible endpoints, and the serving model for virtual time."""

from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse

__all__ = ["LLMBackend", "LLMRequest", "LLMResponse"]
