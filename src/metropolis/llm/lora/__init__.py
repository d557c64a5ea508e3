"""LoRA adapters on a real llama-server: small seeded adapters for SmolLM2, written as GGUF (`adapters`)."""

from metropolis.llm.lora.adapters import AdapterSpec, BaseShape, adapter_paths, base_shape, write_adapter

__all__ = ["AdapterSpec", "BaseShape", "adapter_paths", "base_shape", "write_adapter"]
