"""Calibration against a server, with the server played by the serving model itself: a batching one and one that
serves a request at a time. The fit must tell them apart and recover the batching cost terms."""

from __future__ import annotations

import random

import pytest

from metropolis.llm.calibration import (
    _config,
    calibrate,
    config_from_json,
    plan_probes,
    server_slots,
    simulate_burst,
)
from metropolis.llm.serving import CostModel
from metropolis.llm.serving.calibrate import Measurement

TRUE = CostModel(c0=0.004, c_prefill=0.0005, c_decode=0.002, c_kv=1e-7)  # a CPU: each sequence costs half of c0


def measured(max_running: int, noise: float = 0.02) -> list[Measurement]:
    """What a server running `TRUE` with `max_running` slots answers to the standard probe grid, with noise."""
    rng = random.Random(1)
    server = _config(TRUE, max_running, 2048)
    out = []
    for probe in plan_probes((32, 256, 640), (4, 22, 48), (1, 2, 4, 8), 2):
        m = Measurement(probe.prompt_tokens, probe.output_tokens, probe.concurrency, 1.0)
        latency = simulate_burst(server, m) * rng.uniform(1 - noise, 1 + noise)
        out.append(Measurement(m.prompt_tokens, m.output_tokens, m.concurrency, latency))
    return out


def test_a_batching_server_is_fitted_with_its_batching_terms_and_slots() -> None:
    result = calibrate(measured(max_running=8), random.Random(0), slots=8, batch_tokens=2048)
    assert result.batching == "continuous batching"
    assert result.config.max_running == 8 and result.config.max_batched_tokens == 2048
    assert result.config.cost.c_decode == pytest.approx(TRUE.c_decode, rel=0.25)
    assert result.median_error_pct < 5


def test_a_server_that_serves_one_at_a_time_is_recognised() -> None:
    result = calibrate(measured(max_running=1), random.Random(0))
    assert result.batching == "one at a time"
    assert result.config.max_running == 1
    assert result.median_error_pct < 5


def test_a_saved_model_loads_back() -> None:
    config = _config(TRUE, 16, 2048)
    saved = {"cost": TRUE.as_dict(), "max_running": 16, "max_batched_tokens": 2048}
    assert config_from_json(saved) == config
    assert config_from_json({"serving": saved, "runs": []}) == config  # as bench realtime --save writes it


def test_slots_of_a_server_that_does_not_answer_are_unknown() -> None:
    assert server_slots("http://127.0.0.1:9/v1", timeout=0.5) is None
