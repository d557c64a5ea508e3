"""Reflection: when enough important things have happened, the agent draws a few insights from them."""

from __future__ import annotations

import metropolis.agents.genagent.prompts as prompts
from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.memory_stream import MemoryStream
from metropolis.agents.genagent.parsing import Asker, parse_text_list

INSIGHT_IMPORTANCE = 6


def should_reflect(memory: MemoryStream, cfg: GenAgentConfig) -> bool:
    return cfg.reflection_insights > 0 and memory.importance_since_reflection >= cfg.reflection_threshold


async def reflect(ask: Asker, memory: MemoryStream, identity: str, cfg: GenAgentConfig, now: float) -> list[str]:
    """Insights from the recent memories, added to the stream; the trigger restarts either way."""
    memory.importance_since_reflection = 0
    recent = [m.text for m in memory.recent(12, ("observation", "plan", "chat"))]
    empty: list[str] = []
    insights = await ask(
        "reflect",
        prompts.reflect(identity, recent, cfg.reflection_insights),
        lambda t: parse_text_list(t, "insights", cfg.reflection_insights),
        empty,
        max_tokens=cfg.tokens_reflect,
        schema=prompts.schema_insights(cfg.reflection_insights),
    )
    for insight in insights:
        memory.add("reflection", insight, now, INSIGHT_IMPORTANCE)
    return insights
