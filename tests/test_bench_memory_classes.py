"""`metropolis bench memory` across ScaleSim's workload classes and state kinds: per-agent models with a disk
tier, where invocation distance pays; the estimator's error per class."""

import csv
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.bench.memory import EVICTION_POLICIES, MemoryBenchConfig, compare, gpu_bytes, run_memory_bench
from metropolis.cli.main import app
from metropolis.memory.state import QWEN25_05B

SMALL = MemoryBenchConfig(
    agents=(30,), hours=5 / 60, fractions=(0.1,), lora_ranks=(None,), schedulers=("lockstep",),
    workloads=("independent", "diffusion"), states=("kv", "model"),
)  # fmt: skip


def test_every_class_and_state_runs_every_policy_and_ideal_is_the_floor() -> None:
    rows, sequences = run_memory_bench(SMALL)
    assert [(r.workload, r.state, r.policy) for r in rows] == [
        (w, s, p) for w in SMALL.workloads for s in SMALL.states for p in EVICTION_POLICIES
    ]
    assert len(sequences) == 4
    for c in compare(rows):
        assert c.time_share_of_ideal <= 1.0 + 1e-9
    by = {(r.workload, r.state, r.policy): r for r in rows}
    indep_id = by["independent", "model", "invocation-distance"]
    assert indep_id.estimate_error == 0.0 and indep_id.estimate_within_1 == 1.0  # actions of known duration
    assert indep_id.hit_rate > by["independent", "model", "lru"].hit_rate
    assert indep_id.sim_seconds < by["independent", "model", "lru"].sim_seconds
    assert math.isnan(by["independent", "model", "lru"].estimate_error)  # LRU predicts nothing
    assert by["independent", "model", "sglang"].recompute_tokens == 0  # weights are never recomputed
    assert by["diffusion", "model", "invocation-distance"].estimate_error > 0  # who reposts is a coin toss


def test_a_model_state_sizes_the_gpu_tier_in_whole_models() -> None:
    assert gpu_bytes(SMALL, 30, 0.1, None, 1, "model") == 3 * round(QWEN25_05B.weight_bytes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"states": ("weights",)}, "unknown state kind .weights."),
        ({"workloads": ("chess",)}, "unknown workload class .chess."),
        ({"states": ()}, "no state kind given"),
        ({"agent_model": "gpt"}, "unknown agent model .gpt."),
        ({"model_host_fraction": 0.0}, "model_host_fraction"),
    ],
)
def test_bad_classes_and_states_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryBenchConfig(**change)


def test_cli_runs_a_class_and_a_state_and_writes_them_in_the_csv(tmp_path: Path) -> None:
    args = ["bench", "memory", "--tiny", "--workload", "independent", "--state", "model", "-s", "lockstep"]
    result = CliRunner().invoke(app, [*args, "--fraction", "0.25", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "est. err" in result.output
    with (tmp_path / "memory.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["workload"], r["state"]) for r in rows} == {("independent", "model")}
    bad = CliRunner().invoke(app, ["bench", "memory", "--tiny", "--state", "weights", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown state kind" in bad.output
