"""The statistics a workload generator is tuned to (what `metropolis trace stats` prints; "calibrate" is kept for
fitting the serving model to a live server).

From LLM calls (`call_stats`): the mix of prompt functions and, per function, the empirical prompt-token,
output-token and latency distributions. From agent-steps (`day_stats`, in `daystats.py`): how much agents
move, talk, where they spend each hour, when they sleep.

Two quirks of the Generative Agents export are counted rather than hidden: calls whose end time is within a
millisecond of their start were not served by the LLM (the recorder timed something else; their latencies are
left out of the latency distribution), and for several functions the recorded `input` is the Python list of
the prompt's arguments, not the filled prompt, so their prompt lengths understate the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metropolis.trace.distribution import Distribution
from metropolis.trace.store import Trace

UNTIMED_S = 1e-3


@dataclass(frozen=True, slots=True)
class FunctionStats:
    function: str
    count: int
    share: float
    prompt_tokens: Distribution
    output_tokens: Distribution
    latency: Distribution  # seconds, served calls only
    untimed: int  # calls that took under UNTIMED_S: not served by the LLM
    argument_inputs: int  # calls whose recorded prompt is an argument list, not the prompt
    max_tokens: tuple[int, ...]  # the distinct output caps requested
    tokens: np.ndarray  # (count, 2): prompt and output tokens of each call, to sample them jointly

    def sample_lengths(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, 2) prompt and output token counts of calls drawn from this function's calls."""
        return self.tokens[rng.integers(0, self.count, size=size)]


@dataclass(frozen=True, slots=True)
class CallStats:
    calls: int
    agents: int
    steps: int
    tokenizer: str
    functions: dict[str, FunctionStats]  # most frequent first
    prompt_tokens: Distribution
    output_tokens: Distribution
    latency: Distribution

    def mix(self) -> dict[str, float]:
        return {name: f.share for name, f in self.functions.items()}

    def sample(self, rng: np.random.Generator, size: int) -> pd.DataFrame:
        """`size` calls drawn from the mix, with the prompt and output lengths of a real call of its kind."""
        names = list(self.functions)
        shares = np.array([self.functions[n].share for n in names])
        picks = rng.choice(len(names), size=size, p=shares / shares.sum())
        prompt = np.zeros(size, dtype=np.int64)
        output = np.zeros(size, dtype=np.int64)
        for i, name in enumerate(names):
            where = np.flatnonzero(picks == i)
            if len(where):
                lengths = self.functions[name].sample_lengths(rng, len(where))
                prompt[where], output[where] = lengths[:, 0], lengths[:, 1]
        return pd.DataFrame({"function": [names[i] for i in picks], "prompt_tokens": prompt, "output_tokens": output})

    def lines(self) -> list[str]:
        out = [
            f"LLM calls: {self.calls} by {self.agents} agents over {self.steps} steps (tokens: {self.tokenizer})",
            f"  prompt tokens  {self.prompt_tokens.describe()}",
            f"  output tokens  {self.output_tokens.describe()}",
            f"  latency        {self.latency.describe(3, ' s')}  ({self.latency.count} served calls)",
            f"  {'function':<42} {'calls':>5} {'share':>6} {'prompt':>7} {'output':>7} {'p50 lat':>8} notes",
        ]
        for f in self.functions.values():
            notes = []
            if f.untimed:
                notes.append(f"{f.untimed} untimed")
            if f.argument_inputs:
                notes.append(f"{f.argument_inputs} inputs are argument lists")
            lat = f"{f.latency.quantile(0.5):.3f}" if f.latency.count else "-"
            out.append(
                f"  {f.function:<42} {f.count:>5} {f.share:>6.1%} {f.prompt_tokens.mean:>7.1f} "
                f"{f.output_tokens.mean:>7.1f} {lat:>8} {', '.join(notes)}".rstrip()
            )
        return out


def _function_stats(name: str, group: pd.DataFrame, total: int) -> FunctionStats:
    latency = (group["end"] - group["start"]).to_numpy(dtype=float)
    known = ~np.isnan(latency)
    served = latency[known & (latency >= UNTIMED_S)]
    prompts = group["prompt"].dropna().astype(str)
    tokens = group[["prompt_tokens", "output_tokens"]].to_numpy(dtype=np.int64)
    return FunctionStats(
        function=name,
        count=len(group),
        share=len(group) / total,
        prompt_tokens=Distribution.of(tokens[:, 0]),
        output_tokens=Distribution.of(tokens[:, 1]),
        latency=Distribution.of(served),
        untimed=int((known & (latency < UNTIMED_S)).sum()),
        argument_inputs=int((prompts.str.startswith("[") & prompts.str.endswith("]")).sum()),
        max_tokens=tuple(sorted(int(v) for v in group["max_tokens"].dropna().unique())),
        tokens=tokens,
    )


def call_stats(trace: Trace) -> CallStats:
    calls = trace.calls
    if calls.empty:
        raise ValueError("this trace has no LLM calls to summarise")
    function = calls["function"].astype(str)
    groups = {name: _function_stats(name, group, len(calls)) for name, group in calls.groupby(function, sort=False)}
    ordered = dict(sorted(groups.items(), key=lambda kv: (-kv[1].count, kv[0])))
    served = np.concatenate([f.latency.values for f in ordered.values()])
    return CallStats(
        calls=len(calls),
        agents=int(calls["agent"].nunique()),
        steps=int(calls["step"].max()) - int(calls["step"].min()) + 1,
        tokenizer=str(trace.meta.extra.get("tokenizer", "as recorded")),
        functions=ordered,
        prompt_tokens=Distribution.of(calls["prompt_tokens"].to_numpy(dtype=float)),
        output_tokens=Distribution.of(calls["output_tokens"].to_numpy(dtype=float)),
        latency=Distribution.of(served),
    )


def summary(trace: Trace) -> list[str]:
    """Readable lines for whatever the trace holds: its calls, its agent-steps, or both."""
    from metropolis.trace.daystats import day_stats

    out = [
        f"trace {trace.meta.run_id or '-'} from {trace.meta.source}: {len(trace.meta.agent_names)} agents, "
        f"{len(trace.calls)} calls, {len(trace.steps)} agent-steps, {len(trace.conversations)} conversations"
    ]
    if not trace.calls.empty:
        out += call_stats(trace).lines()
    if not trace.steps.empty:
        day = day_stats(trace)
        lines = day.lines()
        if day.days < 0.999:  # say so: a 2-hour run's "per day" figures are that run scaled up
            lines.insert(1, f"  note: this trace covers {day.days * 24:.2f} simulated hours; the 'per day' figures "
                         "and sleep hours below are scaled from it to 24 hours")  # fmt: skip
        out += lines
    return out


def conversation_reach(trace: Trace) -> float:
    """The largest distance (tiles) between two participants of a conversation where they stood when it started
    (the positions reached the step before): a replay whose perception radius is smaller cannot start that
    conversation as recorded."""
    conv, steps = trace.conversations, trace.steps
    if conv.empty or steps.empty:
        return 0.0
    where = {
        (int(a), int(s)): (float(x), float(y)) for a, s, x, y in steps[["agent", "step", "x", "y"]].itertuples(False)
    }
    reach = 0.0
    for start, participants in zip(conv["start"], conv["participants"], strict=True):
        found = [where.get((int(p), int(start) - 1), where.get((int(p), int(start)))) for p in participants]
        spots = [spot for spot in found if spot is not None]
        for i, (ax, ay) in enumerate(spots):
            for bx, by in spots[i + 1 :]:
                reach = max(reach, ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5)
    return reach
