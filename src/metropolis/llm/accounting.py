"""Token accounting: what a run spent on the LLM, per agent and in total, with retries and an optional cost.

One logical request is one call, however many attempts it took: a retried request is counted once, and its
extra attempts show up as retries. That is what makes the books of a run against a flaky server equal to those
of the same run against a clean one, retries aside.

`Accounting` is an engine listener: fed the engine's call records (`on_call`), it keeps the books of a run in
every runtime, virtual time included, and they are the run's one token count (the run report reads them). A
client may also keep books of its own calls (`record`, `record_failure`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from metropolis.compiled import picklable
from metropolis.llm.types import LLMRequest, LLMResponse


class Answered(Protocol):
    """What the books need of a call record (the engine's `CallRecord` has it): whose, tokens, attempts."""

    @property
    def name(self) -> str: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def output_tokens(self) -> int: ...

    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens."""

    prompt_per_million: float
    completion_per_million: float

    def __post_init__(self) -> None:
        if self.prompt_per_million < 0 or self.completion_per_million < 0:
            raise ValueError(
                f"prices must be >= 0, got {self.prompt_per_million} (prompt) / "
                f"{self.completion_per_million} (completion) per million tokens"
            )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt_per_million + completion_tokens * self.completion_per_million) / 1e6

    @classmethod
    def parse(cls, text: str) -> Prices:
        """A model of `PRICE_TABLE` by name, or `PROMPT,COMPLETION` in USD per million tokens."""
        if text in PRICE_TABLE:
            return PRICE_TABLE[text]
        try:
            prompt, completion = (float(x) for x in text.split(","))
        except ValueError:
            raise ValueError(
                f"--price takes PROMPT,COMPLETION in USD per million tokens or a model of the price table "
                f"({', '.join(PRICE_TABLE)}), got {text!r}"
            ) from None
        for value in (prompt, completion):
            if not 0 <= value <= 1e6:  # also refuses nan
                raise ValueError(f"--price must be within [0, 1000000] USD per million tokens, got {value}")
        return cls(prompt, completion)


# Hosted models' list prices in USD per million tokens (input, output), as published on 2025-06-01 at
# https://openai.com/api/pricing, https://www.anthropic.com/pricing, https://ai.google.dev/gemini-api/docs/pricing
# and https://www.together.ai/pricing. Prices change: pass PROMPT,COMPLETION for today's.
PRICES_AS_OF = "2025-06-01"
PRICE_TABLE: dict[str, Prices] = {
    "gpt-4o": Prices(2.50, 10.00),
    "gpt-4o-mini": Prices(0.15, 0.60),
    "gpt-4.1": Prices(2.00, 8.00),
    "gpt-4.1-mini": Prices(0.40, 1.60),
    "gpt-4.1-nano": Prices(0.10, 0.40),
    "claude-3.5-haiku": Prices(0.80, 4.00),
    "claude-sonnet-4": Prices(3.00, 15.00),
    "gemini-2.0-flash": Prices(0.10, 0.40),
    "llama-3.1-8b-together": Prices(0.18, 0.18),
    "llama-3.3-70b-together": Prices(0.88, 0.88),
}


@dataclass(slots=True)
class Usage:
    """The books of one agent (or of the whole run)."""

    calls: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.failed += other.failed
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Accounting:
    """Per-agent usage for one run. `calls` counts answered logical requests; `failed` those given up on."""

    prices: Prices | None = None
    agents: dict[str, Usage] = field(default_factory=dict)

    def on_call(self, record: Answered) -> None:
        """An answered call, as the engine reports it."""
        self._answered(record.name, record.prompt_tokens, record.output_tokens, record.attempts)

    def on_step(self, record: object) -> None:
        """Steps cost nothing by themselves."""

    def record(self, request: LLMRequest, response: LLMResponse) -> None:
        """An answered call, as a client sees it."""
        self._answered(request.agent, response.prompt_tokens, response.completion_tokens, response.attempts)

    def _answered(self, agent: str, prompt_tokens: int, completion_tokens: int, attempts: int) -> None:
        usage = self._usage(agent)
        usage.calls += 1
        usage.retries += attempts - 1
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens

    def record_failure(self, request: LLMRequest, attempts: int) -> None:
        usage = self._usage(request.agent)
        usage.failed += 1
        usage.retries += max(0, attempts - 1)

    def _usage(self, agent: str) -> Usage:
        usage = self.agents.get(agent)
        if usage is None:
            usage = self.agents[agent] = Usage()
        return usage

    def total(self) -> Usage:
        total = Usage()
        for usage in self.agents.values():
            total.add(usage)
        return total

    def cost(self, usage: Usage | None = None) -> float | None:
        """Estimated cost of `usage` (default: the whole run), or None when no prices are configured."""
        if self.prices is None:
            return None
        u = self.total() if usage is None else usage
        return self.prices.cost(u.prompt_tokens, u.completion_tokens)

    def rows(self) -> list[dict[str, object]]:
        """One row per agent (sorted by name) and a final `*total*` row: ready for a data frame or a table."""
        named = sorted(self.agents.items())
        named.append(("*total*", self.total()))
        return [
            {
                "agent": name,
                "calls": u.calls,
                "failed": u.failed,
                "retries": u.retries,
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "cost_usd": self.cost(u),
            }
            for name, u in named
        ]

    def summary(
        self, per_agent: bool = False, totals: bool = True, simulated_seconds: float | None = None
    ) -> list[str]:
        """Lines for the CLI: the run's totals (unless a report printed them), its cost if priced (projected to a
        simulated day when the run's simulated length is given), and one line per agent if asked."""
        t = self.total()
        cost = self.cost(t)
        lines = []
        if totals:
            lines += [
                f"LLM calls        {t.calls} ({t.failed} failed, {t.retries} retries)",
                f"tokens           {t.prompt_tokens} prompt / {t.completion_tokens} completion",
            ]
        elif t.failed or t.retries:
            lines.append(f"failures         {t.failed} failed calls, {t.retries} retries")
        if cost is not None:
            lines.append(f"estimated cost   ${cost:.4f}")
            if simulated_seconds:
                per_day = cost * 86_400 / simulated_seconds
                lines.append(f"cost per sim day ${per_day:.2f} (this run's rate over 24 simulated hours)")
        if per_agent:
            for name, u in sorted(self.agents.items()):
                lines.append(
                    f"  {name}: {u.calls} calls, {u.retries} retries, {u.prompt_tokens}/{u.completion_tokens} tokens"
                )
        return lines


picklable(Prices)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
