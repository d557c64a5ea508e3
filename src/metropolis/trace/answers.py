"""Recorded answers from a trace, keyed the way a replay asks for them: (agent, step, function, n).

`n` counts one agent's calls of one function within one step, in the order they were made; the calls table keeps
that order, since a step's calls are recorded as they return, one after another.
"""

from __future__ import annotations

from metropolis.trace.store import Trace


def recorded_answers(trace: Trace) -> dict[tuple[str, int, str, int], tuple[str, int, int]]:
    """(agent, step, function, n) -> (answer text, prompt tokens, output tokens) as the recording run counted them:
    a replay books the recorded counts instead of estimating them again from the text."""
    calls = trace.calls
    if calls.empty:
        raise ValueError("the trace holds no LLM calls to replay")
    if "output" not in calls or calls["output"].isna().any():
        raise ValueError("the trace was recorded without answer texts; record it with a generative-agent run")
    keys = ["name", "step", "function"]
    n = calls.groupby(keys, sort=False, observed=True).cumcount()
    return {
        (str(name), int(step), str(function), int(i)): (str(text), int(prompt), int(output))
        for name, step, function, i, text, prompt, output in zip(
            calls["name"],
            calls["step"],
            calls["function"],
            n,
            calls["output"],
            calls["prompt_tokens"],
            calls["output_tokens"],
            strict=True,
        )
    }
