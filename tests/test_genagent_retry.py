"""A retry after a rejected answer samples at the retry temperature instead of repeating the identical request."""

from __future__ import annotations

from metropolis.agents.genagent import GenAgentConfig
from metropolis.llm.types import LLMRequest
from tests.genagent_helpers import sensible_answer
from tests.test_genagent_run import run


def test_a_retry_raises_the_temperature() -> None:
    seen: dict[str, int] = {}

    def rejects_first_plan(request: LLMRequest) -> str:
        if request.function == "daily_plan":
            seen[request.agent] = seen.get(request.agent, 0) + 1
            if seen[request.agent] == 1:
                return "I'd rather not say."
        return sensible_answer(request)

    config = GenAgentConfig(embedder="hash", retry_temperature=0.8)
    _, _, _, llm = run("metropolis", rejects_first_plan, steps=20, config=config)
    plans = [r for r in llm.requests if r.function == "daily_plan" and r.agent == "Ann Lee"]
    assert [r.temperature for r in plans] == [0.0, 0.8]
    assert all(r.temperature == 0.0 for r in llm.requests if r.function != "daily_plan")
