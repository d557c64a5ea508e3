"""A readable account of the day: per agent, what it did when and where, and what was said.

An engine listener: consecutive steps with the same action merge into one entry; utterances (events shaped
"Speaker: line") go into the timeline of every speaker. Times are simulated clock times.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from metropolis.engine.records import CallRecord, StepRecord

if TYPE_CHECKING:
    from metropolis.agents.genagent.agent import GenerativeAgent

START_DATE = dt.datetime(2023, 2, 13)


@dataclass(slots=True)
class Entry:
    first: int
    last: int
    action: str
    pos: tuple[int, int]
    lines: list[str] = field(default_factory=list)


class Timeline:
    """Collects what each agent did at each step; `render()` gives markdown, `summary()` a few lines per agent.

    Records may arrive in any order (out-of-order schedulers): entries are kept by step and merged when read,
    so the timeline is the same under every scheduler.
    """

    def __init__(self, start_seconds: float, seconds_per_step: float, path: str | Path | None = None) -> None:
        self.start_seconds = start_seconds
        self.seconds_per_step = seconds_per_step
        self.path = Path(path) if path is not None else None
        self.states: dict[str, dict[int, tuple[str, tuple[int, int]]]] = {}
        self.lines: dict[str, dict[int, list[str]]] = {}
        self.calls: dict[str, Counter[str]] = {}
        self.tokens = Counter[str]()

    def clock(self, step: int) -> str:
        when = START_DATE + dt.timedelta(seconds=self.start_seconds + step * self.seconds_per_step)
        return when.strftime("%H:%M:%S")

    def on_call(self, record: CallRecord) -> None:
        self.calls.setdefault(record.name, Counter())[record.function] += 1
        self.tokens["prompt"] += record.prompt_tokens
        self.tokens["output"] += record.output_tokens

    def on_step(self, record: StepRecord) -> None:
        # The state is the one reached *after* the step: what the agent does from step + 1 on.
        state = record.state
        self.states.setdefault(record.name, {})[record.step + 1] = (state.action, state.pos)
        speakers = sorted({record.name} | {e.split(":", 1)[0] for e in state.events if ":" in e})
        for name in speakers if state.events else ():
            self.lines.setdefault(name, {}).setdefault(record.step + 1, []).extend(state.events)

    def entries(self, name: str) -> list[Entry]:
        """Consecutive steps with the same action merged; utterances attached to the entry of their step."""
        out: list[Entry] = []
        lines = self.lines.get(name, {})
        for step, (action, pos) in sorted(self.states.get(name, {}).items()):
            if out and out[-1].action == action and out[-1].last == step - 1 and step not in lines:
                out[-1].last = step
            else:
                out.append(Entry(step, step, action, pos))
            out[-1].lines.extend(lines.get(step, []))
        return out

    def agent_lines(self, name: str) -> list[str]:
        out = []
        for e in self.entries(name):
            span = self.clock(e.first) if e.first == e.last else f"{self.clock(e.first)}-{self.clock(e.last)}"
            out.append(f"- {span}  {e.action}  (tile {e.pos[0]},{e.pos[1]})")
            out.extend(f"    > {line}" for line in e.lines)
        return out

    def render(self) -> str:
        parts = ["# Timeline", ""]
        for name in sorted(self.states):
            calls = self.calls.get(name, Counter())
            parts.append(f"## {name}  ({sum(calls.values())} LLM calls)")
            parts.extend(self.agent_lines(name))
            parts.append("")
        return "\n".join(parts)

    def summary(self, lines_per_agent: int = 8) -> str:
        out = []
        for name in sorted(self.states):
            calls = self.calls.get(name, Counter())
            by_function = ", ".join(f"{f} {n}" for f, n in sorted(calls.items()))
            out.append(f"{name}: {sum(calls.values())} calls ({by_function})")
            out.extend(f"  {line}" for line in self.agent_lines(name)[:lines_per_agent])
        return "\n".join(out)

    def write(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise RuntimeError("Timeline.write needs a path (none was given at construction)")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.render() + "\n", encoding="utf-8")
        return target


def parse_summary(agents: list[GenerativeAgent]) -> str:
    """How the model's answers fared per agent: parsed, parsed after a retry, replaced by the fallback."""
    out = []
    for a in agents:
        s = a.stats
        out.append(
            f"{a.name}: {s.answers} answers, {s.parsed - s.retried} parsed at once, {s.retried} after a retry, "
            f"{s.fallbacks} fallbacks; {len(a.memory)} memories"
        )
    return "\n".join(out)
