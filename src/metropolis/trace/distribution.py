"""An empirical distribution: the observed values themselves, summarised, and sampled with a passed-in
generator.

A workload generator tuned to a trace draws from these, so the lengths it produces have the trace's shape
(heavy tails included) rather than a fitted curve's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Distribution:
    values: np.ndarray  # sorted, float64

    @classmethod
    def of(cls, values: Iterable[float] | np.ndarray) -> Distribution:
        array = np.sort(np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float))
        if array.ndim != 1:
            raise ValueError("a distribution takes a flat sequence of values")
        if np.isnan(array).any():
            raise ValueError("a distribution cannot hold NaN values; drop the unknown ones first")
        return cls(array)

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(self.values.mean()) if self.count else float("nan")

    @property
    def min(self) -> float:
        return float(self.values[0]) if self.count else float("nan")

    @property
    def max(self) -> float:
        return float(self.values[-1]) if self.count else float("nan")

    def quantile(self, q: float) -> float:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile q must be within [0, 1], got {q}")
        return float(np.quantile(self.values, q)) if self.count else float("nan")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` values drawn with replacement from the observed ones."""
        if not self.count:
            raise RuntimeError("cannot sample from an empty distribution")
        return rng.choice(self.values, size=size, replace=True)

    def describe(self, digits: int = 1, unit: str = "") -> str:
        if not self.count:
            return "no values"
        f = f"{{:.{digits}f}}{unit}"
        parts = [
            ("mean", self.mean),
            ("p50", self.quantile(0.5)),
            ("p90", self.quantile(0.9)),
            ("p99", self.quantile(0.99)),
            ("max", self.max),
        ]
        return " ".join(f"{name} {f.format(v)}" for name, v in parts)
