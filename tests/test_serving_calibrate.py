"""Fitting cost coefficients: recovered from bursts the engine itself simulates, with measurement noise."""

from __future__ import annotations

import random

import pytest

from metropolis.kernel import Environment
from metropolis.llm.serving import CostModel, Job, Replica, ServingConfig
from metropolis.llm.serving.calibrate import Measurement, evaluate, fit, predict, split

TRUE = CostModel(c0=0.012, c_prefill=0.00011, c_decode=0.0004, c_kv=0.00000009)
CFG = ServingConfig("truth", TRUE, kv_capacity_tokens=10_000_000, max_batched_tokens=1_000_000, max_running=1024)


def burst(prompt: int, output: int, concurrency: int) -> tuple[float, float]:
    """Mean (TTFT, latency) of `concurrency` identical requests sent at once to an idle replica."""
    env = Environment()
    replica = Replica(env, CFG)
    jobs = [Job(f"a{i}", prompt, output) for i in range(concurrency)]
    for job in jobs:
        replica.submit(job)
    env.run()
    return sum(j.ttft for j in jobs) / concurrency, sum(j.latency for j in jobs) / concurrency


def measurements(rng: random.Random, n: int, noise: float) -> list[Measurement]:
    out = []
    for _ in range(n):
        p, o, c = rng.randint(32, 2048), rng.randint(2, 128), rng.choice([1, 2, 4, 8, 16, 32])
        ttft, latency = burst(p, o, c)
        latency *= rng.gauss(1, noise)
        out.append(Measurement(p, o, c, latency, min(latency, ttft * rng.gauss(1, noise))))
    return out


def test_predictions_match_the_engine_exactly() -> None:
    for p, o, c in [(100, 2, 1), (643, 22, 1), (643, 22, 8), (2000, 100, 32)]:
        ttft, latency = burst(p, o, c)
        assert predict(TRUE, Measurement(p, o, c, latency, ttft)) == pytest.approx((ttft, latency), rel=1e-12)


def test_fit_recovers_the_coefficients_from_noisy_measurements() -> None:
    rng = random.Random(1)
    train, test = split(measurements(rng, 120, noise=0.03), 0.25, rng)
    model = fit(train)
    assert model.c0 == pytest.approx(TRUE.c0, rel=0.05)
    assert model.c_prefill == pytest.approx(TRUE.c_prefill, rel=0.05)
    assert model.c_decode == pytest.approx(TRUE.c_decode, rel=0.15)
    assert model.c_kv == pytest.approx(TRUE.c_kv, rel=0.25)
    report = evaluate(model, test)
    assert report["records"] == 30
    assert report["latency_mdape"] < 3.0 and report["ttft_mdape"] < 3.0


def test_a_wrong_model_shows_a_large_error() -> None:
    records = measurements(random.Random(2), 20, noise=0.0)
    assert evaluate(TRUE, records)["latency_mdape"] == pytest.approx(0.0, abs=1e-9)
    slow = CostModel(c0=2 * TRUE.c0, c_prefill=TRUE.c_prefill, c_decode=TRUE.c_decode, c_kv=TRUE.c_kv)
    assert evaluate(slow, records)["latency_mdape"] > 30


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        fit([Measurement(10, 2, 1, 0.1)])
    with pytest.raises(ValueError, match="latency must be > 0"):
        Measurement(10, 2, 1, 0.0)
    with pytest.raises(ValueError, match="test_fraction"):
        split([], 1.5, random.Random(0))
