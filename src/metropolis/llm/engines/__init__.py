"""Agent memory on real serving engines, through their public HTTP APIs (llama.cpp slots, vLLM/SGLang LoRA)."""
