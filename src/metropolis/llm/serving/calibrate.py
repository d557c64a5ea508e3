"""Fit the cost coefficients to measured latencies, and say how well a cost model predicts held-out ones.

A measurement driver (a live server, not this module) sends `concurrency` identical requests at once, a burst,
and records the mean latency and, if it can, the mean TTFT. On an idle engine such a burst is one prefill
iteration of all c prompts (when c * prompt fits the token budget), then output - 1 decode iterations of all
c, so its latency is linear in the coefficients (see `CostModel`):

    TTFT    = c0 + c_prefill * c * p
    latency = TTFT + (o - 1) * (c0 + c_decode * c) + c_kv * c * sum_{j=0}^{o-2} (p + 1 + j)

`fit` solves these rows by non-negative least squares, each row divided by its measurement so that relative
errors count alike; `evaluate` gives the median absolute percentage error of the predictions.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from metropolis.compiled import picklable
from metropolis.llm.serving.cost import CostModel


@dataclass(frozen=True, slots=True)
class Measurement:
    prompt_tokens: int
    output_tokens: int
    concurrency: int
    latency: float  # seconds, mean over the burst
    ttft: float | None = None

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "output_tokens", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"measurement {self}: {name} must be >= 1")
        if not self.latency > 0:
            raise ValueError(f"measurement {self}: latency must be > 0")
        if self.ttft is not None and not 0 < self.ttft <= self.latency:
            raise ValueError(f"measurement {self}: ttft must be within (0, latency]")


def ttft_features(m: Measurement) -> list[float]:
    return [1.0, float(m.concurrency * m.prompt_tokens), 0.0, 0.0]


def latency_features(m: Measurement) -> list[float]:
    c, p, o = m.concurrency, m.prompt_tokens, m.output_tokens
    decodes = o - 1
    kv = c * (decodes * (p + 1) + decodes * (decodes - 1) // 2)
    return [1.0 + decodes, float(c * p), float(decodes * c), float(kv)]


def predict(model: CostModel, m: Measurement) -> tuple[float, float]:
    """(TTFT, latency) the model predicts for the burst `m`."""
    coef = (model.c0, model.c_prefill, model.c_decode, model.c_kv)
    return (
        float(np.dot(coef, ttft_features(m))),
        float(np.dot(coef, latency_features(m))),
    )


def fit(records: Sequence[Measurement]) -> CostModel:
    """The non-negative coefficients that best fit the records' latencies and TTFTs, in relative terms."""
    rows: list[list[float]] = []
    targets: list[float] = []
    for m in records:
        rows.append([x / m.latency for x in latency_features(m)])
        targets.append(1.0)
        if m.ttft is not None:
            rows.append([x / m.ttft for x in ttft_features(m)])
            targets.append(1.0)
    if len(rows) < 4:
        raise ValueError(f"fitting 4 cost coefficients needs at least 4 measurements, got {len(rows)}")
    coef, _ = nnls(np.array(rows), np.array(targets))
    c0, c_prefill, c_decode, c_kv = (float(x) for x in coef)
    return CostModel(c0=c0, c_prefill=c_prefill, c_decode=c_decode, c_kv=c_kv)


def evaluate(model: CostModel, records: Sequence[Measurement]) -> dict[str, float]:
    """Median absolute percentage error of latency (and of TTFT where measured) over `records`."""
    if not records:
        raise ValueError("evaluate needs at least one measurement")
    lat_err, ttft_err = [], []
    for m in records:
        ttft, latency = predict(model, m)
        lat_err.append(abs(latency - m.latency) / m.latency * 100)
        if m.ttft is not None:
            ttft_err.append(abs(ttft - m.ttft) / m.ttft * 100)
    out = {"records": float(len(records)), "latency_mdape": statistics.median(lat_err)}
    if ttft_err:
        out["ttft_mdape"] = statistics.median(ttft_err)
    return out


def split(
    records: Sequence[Measurement], test_fraction: float, rng: random.Random
) -> tuple[list[Measurement], list[Measurement]]:
    """(train, test), shuffled by `rng`; the test part holds round(test_fraction * n) records."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be within (0, 1), got {test_fraction}")
    shuffled = list(records)
    rng.shuffle(shuffled)
    n_test = round(test_fraction * len(shuffled))
    return shuffled[n_test:], shuffled[:n_test]


picklable(Measurement)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
