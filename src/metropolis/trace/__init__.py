"""Traces: what a run did (every LLM call, every agent-step), recorded, imported from real runs, and
summarised."""

from metropolis.trace.answers import recorded_answers
from metropolis.trace.recorder import TraceRecorder
from metropolis.trace.schema import CALLS_SCHEMA, CONVERSATIONS_SCHEMA, STEPS_SCHEMA, TraceMeta
from metropolis.trace.store import Trace

__all__ = [
    "CALLS_SCHEMA",
    "CONVERSATIONS_SCHEMA",
    "STEPS_SCHEMA",
    "Trace",
    "TraceMeta",
    "TraceRecorder",
    "recorded_answers",
]
