"""Small LoRA adapters the project generates for a GGUF base model (SmolLM2-135M), one per agent, as GGUF files
that llama.cpp's `llama-server --lora FILE` loads.

Why generated and not trained: the serving cost of an adapter (its bytes, the low-rank products per token, what
the server does when a slot changes adapter) does not depend on what the weights learned, only on their shapes.
Seeded random weights of a small rank and small magnitude change the output (a test checks it at temperature 0)
while keeping it sane.

The file format is llama.cpp's own (written with its `gguf` PyPI package, as its convert_lora_to_gguf.py does;
read by `llama_adapter_lora_init_impl` in src/llama-adapter.cpp):
- KV: `general.architecture` equal to the base model's (else "model arch and LoRA arch mismatch"),
  `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` (f32; the applied scale is
  request scale x alpha / rank);
- tensors `blk.N.attn_q.weight.lora_a` / `.lora_b` for every target weight `blk.N.attn_q.weight` of the base:
  in numpy order `lora_a` is (rank, in) and `lora_b` is (out, rank), so that in ggml order `a.ne[0]` equals the
  base weight's `ne[0]` (its input size) and `b.ne[1]` its output size, and `a.ne[1] == b.ne[0] == rank`.
Files go into a cache folder at first use and are reused when the same spec asks again (never committed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_TARGETS = ("attn_q", "attn_v")  # the usual LoRA targets (PEFT's default for llama: q_proj, v_proj)
CACHE_ENV_VAR = "METROPOLIS_LORA_CACHE"


@dataclass(frozen=True, slots=True)
class BaseShape:
    """What an adapter must match in the base model: its architecture and each target weight's (in, out)."""

    architecture: str
    layers: int
    weights: dict[str, tuple[int, int]]  # "blk.0.attn_q.weight" -> (in, out)


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """One adapter's recipe: rank, alpha, the weights' standard deviation of B, targets, and a seed."""

    rank: int = 4
    alpha: float = 4.0
    b_std: float = 0.1  # A is scaled by 1/sqrt(in); at 0.02 most outputs of SmolLM2-135M did not change at all
    targets: tuple[str, ...] = DEFAULT_TARGETS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or self.b_std <= 0 or not self.targets:
            raise ValueError("an adapter needs rank >= 1, alpha > 0, b_std > 0 and at least one target")

    def name(self, index: int) -> str:
        """The file name of adapter `index` (every field of the spec in it, so a cached file is the same one)."""
        targets = "+".join(self.targets)
        return f"lora-r{self.rank}-a{self.alpha:g}-s{self.b_std:g}-{targets}-seed{self.seed}-{index}.gguf"


def base_shape(model: Path, targets: Sequence[str] = DEFAULT_TARGETS) -> BaseShape:
    """The architecture, layer count and target weight shapes, read from the base model's GGUF header."""
    from gguf import GGUFReader  # a heavy import, only for callers that write adapters

    reader = GGUFReader(model)
    arch_field = reader.fields["general.architecture"]
    architecture = str(arch_field.contents())
    layers = int(reader.fields[f"{architecture}.block_count"].contents())
    wanted = {f"blk.{i}.{t}.weight" for i in range(layers) for t in targets}
    weights = {t.name: (int(t.shape[0]), int(t.shape[1])) for t in reader.tensors if t.name in wanted}
    missing = wanted - weights.keys()
    if missing:
        raise ValueError(f"{model.name} has no weight {sorted(missing)[0]} (targets {', '.join(targets)})")
    return BaseShape(architecture, layers, dict(sorted(weights.items())))


def write_adapter(path: Path, shape: BaseShape, spec: AdapterSpec, index: int) -> Path:
    """Write adapter `index` of `spec` for `shape` to `path` (atomically: a temporary file renamed)."""
    from gguf import GGUFType, GGUFWriter, Keys

    rng = np.random.default_rng([spec.seed, index])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = GGUFWriter(tmp, shape.architecture)
    writer.add_type(GGUFType.ADAPTER)
    writer.add_string(Keys.Adapter.TYPE, "lora")
    writer.add_float32(Keys.Adapter.LORA_ALPHA, spec.alpha)
    for name, (n_in, n_out) in shape.weights.items():
        a = rng.standard_normal((spec.rank, n_in), dtype=np.float32) / np.float32(np.sqrt(n_in))
        b = rng.standard_normal((n_out, spec.rank), dtype=np.float32) * np.float32(spec.b_std)
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def cache_dir() -> Path:
    """$METROPOLIS_LORA_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/metropolis/lora."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "metropolis" / "lora"


def adapter_paths(model: Path, count: int, spec: AdapterSpec | None = None, folder: Path | None = None) -> list[Path]:
    """`count` adapters for `model`, generated into `folder` (default: `cache_dir()/<model file stem>`) the
    first time and reused after."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    spec = spec or AdapterSpec()
    folder = folder or cache_dir() / model.stem
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / spec.name(i) for i in range(count)]
    todo = [(i, p) for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        shape = base_shape(model, spec.targets)
        for i, path in todo:
            write_adapter(path, shape, spec, i)
    return paths
