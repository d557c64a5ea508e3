"""Named serving set-ups, derived from datasheets and model shapes by a roofline, with every figure's source.

Hardware (NVIDIA datasheets; dense BF16 tensor FLOPs, i.e. half the "with sparsity" headline figure):
- L4: 24 GB GDDR6, 300 GB/s, 121 TFLOPS BF16 dense (242 with sparsity). NVIDIA L4 datasheet.
- A100 80GB SXM: 80 GB HBM2e, 2,039 GB/s, 312 TFLOPS BF16 dense. NVIDIA A100 datasheet
  (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf), as tabulated at
  glennklockwood.com/garden/processors/A100.
- H100 SXM5 80GB: 80 GB HBM3, 3,350 GB/s, 989 TFLOPS BF16 dense. NVIDIA H100 datasheet, as tabulated at
  glennklockwood.com/garden/processors/h100.

Models (shapes from `metropolis.memory.state`, their one definition; Hugging Face config.json of
meta-llama/Meta-Llama-3-8B and -70B; BF16 weights and KV cache):
- Llama-3-8B: 8.03e9 parameters, 32 layers, 8 KV heads of dim 128: 2 * 32 * 8 * 128 * 2 B = 131,072 B per KV
  token.
- Llama-3-70B: 70.6e9 parameters, 80 layers, 8 KV heads of dim 128: 327,680 B per KV token.

Derivation (roofline; no direct measurement of these coefficients is published, so they are computed):
- c0 = weight bytes per GPU / (HBM bandwidth * DECODE_BW_EFFICIENCY), plus, under tensor parallelism, two
  all-reduces per layer at ALLREDUCE_LATENCY each. DECODE_BW_EFFICIENCY = 0.77 is measured: vLLM 0.23 serving
  Llama-3.1-8B BF16 on an A100 40GB decodes about 75 tokens/s at concurrency 1, 77% of the 1,555 GB/s ceiling
  (johnmusgrave.com/p/vllm-throughput-latency-sweep-on); it is applied to every GPU (an assumption).
- c_prefill = c_decode = 2 * params / (GPUs * dense BF16 FLOPs * PREFILL_MFU): the FLOPs of one token's GEMMs.
  PREFILL_MFU = 0.5 is an assumption (large-GEMM efficiency of prefill batches of hundreds of tokens), to be
  replaced by `calibrate.fit` on measurements.
- c_kv = KV bytes per token / (GPUs * HBM bandwidth * DECODE_BW_EFFICIENCY): decode attention reads the whole
  KV.
- KV capacity = (GPUs * memory * MEMORY_FRACTION - weights - GPUs * ACTIVATION_RESERVE) / KV bytes per token.
  MEMORY_FRACTION = 0.9 is vLLM's default `gpu_memory_utilization` (SGLang's `mem_fraction_static` is
  similar); ACTIVATION_RESERVE = 1 GB per GPU for activations and CUDA graphs is an assumption.
- max_batched_tokens: SGLang's `chunked_prefill_size` default, 2,048 on GPUs under 25 GB and 8,192 otherwise
  (sglang/srt/server_args.py); max_running = 256, vLLM's `max_num_seqs` default.

For the `*-tp4` presets one replica is a tensor-parallel group of 4 GPUs; `preset(name, gpus=N)` gives N
replicas, so N groups, 4 * N GPUs in all. ALLREDUCE_LATENCY = 15 us per small all-reduce on NVLink is an
assumption.

`cpu-smollm2-135m`: PLACEHOLDER figures for SmolLM2-135M-Instruct under llama.cpp on a few CPU cores, to be
replaced by `calibrate.fit` on measurements of the local server. Only its shape is real (30 layers, 3 KV heads
of dim 64, F16 KV: 23,040 B per token); the context (8,192) and parallel slots (4) are the server settings we
launch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from metropolis.compiled import picklable
from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.cost import CostModel
from metropolis.memory.state import LLAMA3_8B, LLAMA3_70B, SMOLLM2_135M, ModelShape
from metropolis.registry import lookup

DECODE_BW_EFFICIENCY = 0.77
PREFILL_MFU = 0.5
MEMORY_FRACTION = 0.9
ACTIVATION_RESERVE = 1e9
ALLREDUCE_LATENCY = 15e-6


@dataclass(frozen=True, slots=True)
class Gpu:
    name: str
    memory: float  # bytes
    bandwidth: float  # bytes/s
    flops: float  # dense BF16 FLOP/s


L4 = Gpu("L4", 24e9, 300e9, 121e12)
A100 = Gpu("A100-80GB-SXM", 80e9, 2039e9, 312e12)
H100 = Gpu("H100-80GB-SXM", 80e9, 3350e9, 989e12)


def roofline(name: str, gpu: Gpu, model: ModelShape, tp: int = 1) -> ServingConfig:
    """A replica of `model` on `tp` GPUs of kind `gpu`, costed as the module docstring says."""
    bandwidth = gpu.bandwidth * DECODE_BW_EFFICIENCY
    c0 = model.weight_bytes / tp / bandwidth + (2 * model.layers * ALLREDUCE_LATENCY if tp > 1 else 0.0)
    per_token = 2 * model.params / (tp * gpu.flops * PREFILL_MFU)
    kv_bytes = model.kv_bytes_per_token
    free = tp * gpu.memory * MEMORY_FRACTION - model.weight_bytes - tp * ACTIVATION_RESERVE
    if free <= 0:
        raise ValueError(f"preset {name}: {model.name} does not fit on {tp} x {gpu.name}")
    return ServingConfig(
        name=name,
        cost=CostModel(c0=c0, c_prefill=per_token, c_decode=per_token, c_kv=kv_bytes / (tp * bandwidth)),
        kv_capacity_tokens=int(free // kv_bytes),
        max_batched_tokens=2048 if gpu.memory < 25e9 else 8192,
        max_running=256,
        kv_bytes_per_token=kv_bytes,
        gpus_per_replica=tp,
        note=f"{model.name} BF16 on {tp} x {gpu.name}, roofline-derived (see metropolis.llm.serving.presets)",
    )


def _cpu_smollm2() -> ServingConfig:
    return ServingConfig(
        name="cpu-smollm2-135m",
        cost=CostModel(c0=0.010, c_prefill=0.0002, c_decode=0.002, c_kv=0.0),  # PLACEHOLDER, calibrate
        kv_capacity_tokens=8192,
        max_batched_tokens=512,
        max_running=4,
        kv_bytes_per_token=SMOLLM2_135M.kv_bytes_per_token,
        note="PLACEHOLDER cost figures for SmolLM2-135M on llama.cpp (CPU); replace by calibrate.fit",
    )


PRESETS: dict[str, Callable[[], ServingConfig]] = {
    "l4-llama3-8b": lambda: roofline("l4-llama3-8b", L4, LLAMA3_8B),
    "a100-llama3-8b": lambda: roofline("a100-llama3-8b", A100, LLAMA3_8B),
    "h100-llama3-8b": lambda: roofline("h100-llama3-8b", H100, LLAMA3_8B),
    "a100-llama3-70b-tp4": lambda: roofline("a100-llama3-70b-tp4", A100, LLAMA3_70B, tp=4),
    "h100-llama3-70b-tp4": lambda: roofline("h100-llama3-70b-tp4", H100, LLAMA3_70B, tp=4),
    "cpu-smollm2-135m": _cpu_smollm2,
}


def preset(name: str, gpus: int = 1, **overrides: object) -> ServingConfig:
    """The preset `name` with `gpus` data-parallel replicas (TP presets: `gpus` tensor-parallel groups)."""
    base = lookup(PRESETS, name, "serving preset")()
    return base.replace(replicas=gpus, **overrides)


def single_request_latency(config: ServingConfig, prompt_tokens: int, output_tokens: int) -> float:
    """Seconds one request takes on an idle replica: one prefill iteration, then output_tokens - 1 decodes."""
    cost = config.cost
    return cost.iteration(prompt_tokens, 0, 0) + cost.decode_span(output_tokens - 1, 1, prompt_tokens + 1)


picklable(Gpu)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
