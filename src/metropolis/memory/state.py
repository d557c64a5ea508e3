"""Per-agent private serving state and how big it is.

An agent's private state is what the serving engine must hold on the GPU to run the agent's request cheaply:
the KV cache of its long prompt prefix (persona, memories), optionally its own LoRA adapter, or a whole small
model of its own (ScaleSim's "models, prefix caches, and adapters"). Sizes follow
from the model's shape, so they are computed here rather than configured, and the 128 KiB/token figure of
Llama-3-8B is a test rather than a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from metropolis.registry import lookup


class StateKind(Enum):
    """The kind decides how a miss is served: a KV prefix is recomputed, an adapter or a model is loaded from
    disk (weights cannot be recomputed)."""

    KV_PREFIX = "kv"
    LORA = "lora"
    MODEL = "model"

    @property
    def on_disk(self) -> bool:
        """Whether a copy that is nowhere in memory can still be read from disk (weights; not a KV prefix)."""
        return self is not StateKind.KV_PREFIX


@dataclass(frozen=True, slots=True)
class ModelShape:
    """The dimensions that decide KV, adapter and weight sizes (not the whole config of a model).

    The one definition of a model's shape: agent memory sizes state from it, the serving presets cost a replica
    from it. `params` (the parameter count) is only needed for weight bytes; 0 when unknown.
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    dtype_bytes: int = 2
    params: float = 0.0

    def __post_init__(self) -> None:
        for field_name in (
            "layers",
            "hidden",
            "heads",
            "kv_heads",
            "head_dim",
            "intermediate",
            "dtype_bytes",
        ):
            if getattr(self, field_name) <= 0:
                raise ValueError(f"model shape {self.name!r}: {field_name} must be > 0")

    @property
    def kv_bytes_per_token(self) -> int:
        return kv_bytes_per_token(self.layers, self.kv_heads, self.head_dim, self.dtype_bytes)

    @property
    def weight_bytes(self) -> float:
        """The weights in `dtype_bytes` per parameter (what a replica must hold before any KV cache)."""
        if self.params <= 0:
            raise ValueError(f"model shape {self.name!r}: give params (the parameter count) to size its weights")
        return self.params * self.dtype_bytes

    def linear_dims(self, module: str) -> tuple[int, int]:
        """(d_in, d_out) of one of a decoder layer's linear projections, by its Hugging Face name."""
        q_out, kv_out = self.heads * self.head_dim, self.kv_heads * self.head_dim
        dims = {
            "q_proj": (self.hidden, q_out),
            "k_proj": (self.hidden, kv_out),
            "v_proj": (self.hidden, kv_out),
            "o_proj": (q_out, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }
        return lookup(dims, module, "linear module")


# Hugging Face config.json of meta-llama/Meta-Llama-3-8B and -70B and HuggingFaceTB/SmolLM2-135M-Instruct.
LLAMA3_8B = ModelShape(
    "Llama-3-8B", layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=14336, params=8.03e9
)
LLAMA3_70B = ModelShape(
    "Llama-3-70B", layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128, intermediate=28672, params=70.6e9
)
SMOLLM2_135M = ModelShape(
    "SmolLM2-135M", layers=30, hidden=576, heads=9, kv_heads=3, head_dim=64, intermediate=1536, params=0.135e9
)
# Whole small models an agent may own (config.json of Qwen/Qwen2.5-0.5B-Instruct, meta-llama/Llama-3.2-1B-Instruct):
# 0.99 GB and 2.47 GB in bf16.
QWEN25_05B = ModelShape(
    "Qwen2.5-0.5B", layers=24, hidden=896, heads=14, kv_heads=2, head_dim=64, intermediate=4864, params=0.494e9
)
LLAMA32_1B = ModelShape(
    "Llama-3.2-1B", layers=16, hidden=2048, heads=32, kv_heads=8, head_dim=64, intermediate=8192, params=1.236e9
)
AGENT_MODELS: dict[str, ModelShape] = {"qwen2.5-0.5b": QWEN25_05B, "llama3.2-1b": LLAMA32_1B}
ATTENTION_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    """K and V for every layer: 2 x layers x kv_heads x head_dim x dtype bytes (Llama-3-8B bf16: 128 KiB)."""
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def lora_bytes(shape: ModelShape, rank: int, modules: Sequence[str] = ATTENTION_MODULES) -> int:
    """An adapter holds A (r x d_in) and B (d_out x r) per adapted linear layer: r (d_in + d_out) values
    each."""
    if rank <= 0:
        raise ValueError(f"LoRA rank must be > 0, got {rank}")
    per_layer = sum(rank * sum(shape.linear_dims(m)) for m in modules)
    return per_layer * shape.layers * shape.dtype_bytes


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One piece of one agent's private state. `tokens` (KV prefixes only) is what a recompute must
    prefill."""

    agent: int
    kind: StateKind
    nbytes: int
    tokens: int | None = None

    def __post_init__(self) -> None:
        if self.nbytes <= 0:
            raise ValueError(f"agent {self.agent} {self.kind.value} state: size must be > 0 bytes, got {self.nbytes}")
        if self.kind is StateKind.KV_PREFIX and (self.tokens is None or self.tokens <= 0):
            raise ValueError(f"agent {self.agent} KV prefix: give its token count (> 0), got {self.tokens}")

    @property
    def key(self) -> tuple[int, StateKind]:
        return (self.agent, self.kind)


def agent_state(
    agent: int,
    prefix_tokens: int,
    shape: ModelShape = LLAMA3_8B,
    lora_rank: int | None = None,
    own_model: bool = False,
) -> list[StateSpec]:
    """The private state of one agent: its KV prefix (none when `prefix_tokens` is 0), plus a LoRA adapter on
    the attention projections if ranked, plus, with `own_model`, the weights of `shape` itself (the agent runs
    its own copy of the model: a fine-tuned small model per agent)."""
    specs = []
    if own_model:
        specs.append(StateSpec(agent, StateKind.MODEL, round(shape.weight_bytes)))
    if prefix_tokens:
        specs.append(StateSpec(agent, StateKind.KV_PREFIX, prefix_tokens * shape.kv_bytes_per_token, prefix_tokens))
    if lora_rank is not None:
        specs.append(StateSpec(agent, StateKind.LORA, lora_bytes(shape, lora_rank)))
    if not specs:
        raise ValueError(f"agent {agent}: no private state (no prefix tokens, adapter or own model)")
    return specs
