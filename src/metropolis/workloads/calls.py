"""The LLM calls of the Generative Agents loop: which prompt functions fire on which occasion, and how long
their prompts and answers are.

Occasions (bundles, in the order the original `reverie` code issues them):
- waking: `wake_up_hour`, `daily_plan`, then one `generate_hourly_schedule` per waking hour;
- a new hourly activity: `task_decomp`;
- a new sub-task: choosing sector, arena and object, its emoji, its event triples and object description, and
  the poignancy of the new memory;
- perceiving a new event: `event_poignancy`; a persona in focus: `decide_to_talk`, or `decide_to_react`
  while the two talked too recently;
- a conversation (inside the initiator's step, up to 8 rounds): per side and round the relationship summary
  and the utterance, then the summary, and per side a planning thought, a memo and a re-decomposed schedule;
- a reflection: focal points, insights, and the poignancy of each insight.

Lengths. The real trace (`genagents-trace`) gives each function's *shape* (its empirical distribution divided
by its mean) where its recorded inputs are whole prompts; its means are in SmolLM2 tokens (about 2.9 characters
each) and cover only the morning, so the *means* here are Llama-3/GPT tokens estimated from the prompt
templates of Generative Agents (the template plus its usual fillings), then scaled once so that a generated day
of 25 agents averages the paper's 642.6 prompt and 21.9 output tokens per call
(`tests/test_workloads_paper_day.py` checks it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from metropolis.paths import shared_data_dir

P = "run_gpt_prompt_"

# function -> (mean prompt tokens, mean output tokens), before the tuning scales below.
FUNCTIONS: dict[str, tuple[float, float]] = {
    P + "wake_up_hour": (260.0, 2.0),
    P + "daily_plan": (340.0, 90.0),
    P + "generate_hourly_schedule": (1150.0, 12.0),
    P + "task_decomp": (1000.0, 110.0),
    P + "action_sector": (700.0, 6.0),
    P + "action_arena": (520.0, 6.0),
    P + "action_game_object": (280.0, 4.0),
    P + "pronunciatio": (120.0, 4.0),
    P + "event_triple": (380.0, 12.0),
    P + "act_obj_desc": (270.0, 10.0),
    P + "act_obj_event_triple": (330.0, 12.0),
    P + "event_poignancy": (330.0, 2.0),
    P + "decide_to_talk": (760.0, 2.0),
    P + "decide_to_react": (800.0, 2.0),
    P + "agent_chat_summarize_relationship": (650.0, 45.0),
    P + "iterative_convo": (1250.0, 55.0),
    P + "summarize_conversation": (560.0, 25.0),
    P + "planning_thought_on_convo": (540.0, 35.0),
    P + "memo_on_convo": (540.0, 35.0),
    P + "new_decomp_schedule": (1100.0, 90.0),
    P + "focal_pt": (850.0, 40.0),
    P + "insight_and_guidance": (950.0, 70.0),
}
FUNCTION_NAMES: tuple[str, ...] = tuple(FUNCTIONS)
FN = {name.removeprefix(P): i for i, name in enumerate(FUNCTION_NAMES)}

# Tuning: one factor per column, set on the 25-agent day (see `tests/test_workloads_paper_day.py`).
PROMPT_SCALE = 1.115
OUTPUT_SCALE = 1.85

SUBTASK = tuple(
    FN[f]
    for f in (
        "action_sector",
        "action_arena",
        "action_game_object",
        "pronunciatio",
        "event_triple",
        "act_obj_desc",
        "act_obj_event_triple",
        "event_poignancy",
    )
)
WAKE = (FN["wake_up_hour"], FN["daily_plan"])
HOURLY = FN["generate_hourly_schedule"]
DECOMP = FN["task_decomp"]
POIGNANCY = FN["event_poignancy"]
DECIDE = FN["decide_to_talk"]
REACT = FN["decide_to_react"]
CHAT_TURN = (FN["agent_chat_summarize_relationship"], FN["iterative_convo"])
CHAT_END = FN["summarize_conversation"]
AFTER_CHAT = (FN["planning_thought_on_convo"], FN["memo_on_convo"], FN["new_decomp_schedule"])
REFLECT_FOCAL = FN["focal_pt"]
REFLECT_INSIGHT = FN["insight_and_guidance"]

DEFAULT_SPREAD = 0.3  # log-normal sigma for functions the trace has no real prompts of


@dataclass(frozen=True, slots=True)
class LengthModel:
    """Per function, the shape (mean-1 samples) of its prompt and output lengths, from the trace or log-normal."""

    prompt_shapes: dict[int, np.ndarray]
    output_shapes: dict[int, np.ndarray]
    source: str

    def sample(self, functions: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output tokens for calls of the given function codes (int arrays, at least 1 each)."""
        prompt = np.empty(len(functions), dtype=np.int32)
        output = np.empty(len(functions), dtype=np.int32)
        for code in np.unique(functions):
            where = np.flatnonzero(functions == code)
            mean_p, mean_o = FUNCTIONS[FUNCTION_NAMES[code]]
            prompt[where] = _draw(self.prompt_shapes.get(int(code)), mean_p * PROMPT_SCALE, len(where), rng)
            output[where] = _draw(self.output_shapes.get(int(code)), mean_o * OUTPUT_SCALE, len(where), rng)
        return prompt, output


def _draw(shape: np.ndarray | None, mean: float, size: int, rng: np.random.Generator) -> np.ndarray:
    if shape is None:
        factor = rng.lognormal(-(DEFAULT_SPREAD**2) / 2, DEFAULT_SPREAD, size)
    else:
        factor = shape[rng.integers(0, len(shape), size)]
    return np.maximum(1, np.rint(factor * mean)).astype(np.int32)


@functools.lru_cache(maxsize=1)
def trace_length_model() -> LengthModel:
    """Shapes from the real trace where its inputs are whole prompts; log-normal elsewhere (and without data)."""
    data = shared_data_dir(required=False)
    path = None if data is None else data / "genagents-trace" / "redis_data.json"
    if path is None or not path.is_file():
        return LengthModel({}, {}, "log-normal (no genagents-trace data found)")
    from metropolis.trace.genagents import import_genagents
    from metropolis.trace.stats import call_stats

    stats = call_stats(import_genagents(path, keep_text=False))
    prompts: dict[int, np.ndarray] = {}
    outputs: dict[int, np.ndarray] = {}
    for name, f in stats.functions.items():
        code = FUNCTION_NAMES.index(name) if name in FUNCTIONS else None
        if code is None or f.argument_inputs or f.count < 10:
            continue
        tokens = f.tokens.astype(float)
        prompts[code] = tokens[:, 0] / tokens[:, 0].mean()
        if tokens[:, 1].std() > 0:
            outputs[code] = tokens[:, 1] / tokens[:, 1].mean()
    return LengthModel(prompts, outputs, f"shapes of {len(prompts)} functions from {path.name}")
