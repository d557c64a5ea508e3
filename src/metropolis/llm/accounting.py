"""Token accounting: what a run spent on the LLM, per agent and in total, with retries and an optional cost.

One logical request is one call, however many attempts it took: a retried request is counted once, and its
extra
attempts show up as retries. That is what makes the books of a run against a flaky server equal to those of
the
same run against a clean one, retries aside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metropolis.llm.types import LLMRequest, LLMResponse


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

    def record(self, request: LLMRequest, response: LLMResponse) -> None:
        usage = self._usage(request.agent)
        usage.calls += 1
        usage.retries += response.attempts - 1
        usage.prompt_tokens += response.prompt_tokens
        usage.completion_tokens += response.completion_tokens

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

    def summary(self, per_agent: bool = False) -> list[str]:
        """Lines for the CLI: the run's totals, and one line per agent if asked."""
        t = self.total()
        cost = self.cost(t)
        lines = [
            f"LLM calls        {t.calls} ({t.failed} failed, {t.retries} retries)",
            f"tokens           {t.prompt_tokens} prompt / {t.completion_tokens} completion",
        ]
        if cost is not None:
            lines.append(f"estimated cost   ${cost:.4f}")
        if per_agent:
            for name, u in sorted(self.agents.items()):
                lines.append(
                    f"  {name}: {u.calls} calls, {u.retries} retries, {u.prompt_tokens}/{u.completion_tokens} tokens"
                )
        return lines
