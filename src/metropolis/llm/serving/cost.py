"""The cost of one engine iteration, and of k decode iterations in a row, in closed form.

    t(iteration) = c0 + c_prefill * prefill_tokens + c_decode * decode_batch + c_kv * kv_tokens

- `c0`: what every iteration pays whatever its batch: reading all weights from HBM once (decode is memory
  bound), plus kernel launches and the engine's CPU scheduling.
- `c_prefill`: per prompt token processed in the iteration (compute bound: 2 * params FLOPs per token).
- `c_decode`: per running request that decodes one token in the iteration (its share of the GEMM FLOPs).
- `c_kv`: per token of KV cache the decode attention reads (bytes per KV token / HBM bandwidth).

The form is linear in the coefficients, so `calibrate.fit` finds them by non-negative least squares; it is the
roofline `max(memory, compute)` replaced by a sum, which overestimates by at most the smaller of the two
terms. Prefill attention (quadratic in the prompt) is left out: about 2% of the prefill FLOPs at 643 tokens on
Llama-3-8B.

While the batch is fixed (b requests decoding, kv0 tokens attended in the first iteration, and each iteration
adding one token per request), k iterations take
    D(k) = k * (c0 + c_decode * b + c_kv * kv0) + c_kv * b * k * (k - 1) / 2
which is what lets the engine jump from one completion to the next instead of stepping every iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from metropolis.compiled import picklable


@dataclass(frozen=True, slots=True)
class CostModel:
    c0: float
    c_prefill: float
    c_decode: float
    c_kv: float

    def __post_init__(self) -> None:
        for name in ("c0", "c_prefill", "c_decode", "c_kv"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"cost coefficient {name} must be a finite number >= 0 (seconds), got {value!r}")
        if self.c0 + self.c_prefill + self.c_decode + self.c_kv <= 0:
            raise ValueError("a cost model needs at least one positive coefficient, or iterations take no time")

    def iteration(self, prefill_tokens: int, decode_batch: int, kv_tokens: int) -> float:
        """Seconds one iteration takes."""
        return self.c0 + self.c_prefill * prefill_tokens + self.c_decode * decode_batch + self.c_kv * kv_tokens

    def decode_span(self, k: int, batch: int, kv0: int) -> float:
        """Seconds k decode iterations of a fixed batch take, the first attending kv0 tokens."""
        first = self.c0 + self.c_decode * batch + self.c_kv * kv0
        return k * first + self.c_kv * batch * (k * (k - 1) // 2)

    def decode_iterations_within(self, elapsed: float, batch: int, kv0: int) -> int:
        """The largest k with decode_span(k) <= elapsed: iterations wholly done `elapsed` s into a run."""
        if elapsed <= 0:
            return 0
        a = self.c0 + self.c_decode * batch + self.c_kv * kv0
        b = self.c_kv * batch
        if b == 0:
            k = int(elapsed / a)
        else:  # b/2 k^2 + (a - b/2) k - elapsed = 0
            half = a - b / 2
            k = int((-half + math.sqrt(half * half + 2 * b * elapsed)) / b)
        while self.decode_span(k + 1, batch, kv0) <= elapsed:
            k += 1
        while k > 0 and self.decode_span(k, batch, kv0) > elapsed:
            k -= 1
        return k

    def as_dict(self) -> dict[str, float]:
        return {"c0": self.c0, "c_prefill": self.c_prefill, "c_decode": self.c_decode, "c_kv": self.c_kv}


picklable(CostModel)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
