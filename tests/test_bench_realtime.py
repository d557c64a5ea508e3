"""`bench realtime`'s parts that need no server: the workloads, the prediction, speedups and ranking; the real
bench (against llama-server) is marked `bench`."""

from __future__ import annotations

import pytest

from metropolis.bench.realtime import (
    PolicyRun,
    WorkloadSpec,
    predict,
    same_ranking,
    simulation_factory,
    speedup,
)
from metropolis.llm.calibration import _config
from metropolis.llm.local_server import unavailable_reason
from metropolis.llm.serving import CostModel
from metropolis.world.smallville import load_smallville

CPU = _config(CostModel(c0=0.004, c_prefill=0.0005, c_decode=0.002, c_kv=1e-7), 16, 2048)


def run(policy: str, measured: float, predicted: float) -> PolicyRun:
    return PolicyRun("w", policy, measured, predicted, 10, 1.0, 1.0, 100, 10)


def test_out_of_order_is_predicted_faster_than_serial_on_a_batching_server() -> None:
    town = load_smallville(agents=25)
    make = simulation_factory(town, WorkloadSpec("walkers", 25, 2 / 60))
    serial, _ = predict(make("serial"), CPU)
    metropolis, in_flight = predict(make("metropolis"), CPU)
    assert serial > metropolis > 0 and in_flight > 1
    assert predict(make("metropolis"), CPU) == predict(make("metropolis"), CPU)  # a fresh, identical run each time


def test_replayed_calls_carry_the_recorded_sizes() -> None:
    town = load_smallville(agents=10)
    make = simulation_factory(town, WorkloadSpec("replay", 10, 3 / 60))
    seconds, _ = predict(make("lockstep"), CPU)
    assert seconds > 0


def test_speedups_errors_and_ranking() -> None:
    runs = [run("serial", 30.0, 33.0), run("lockstep", 20.0, 19.0), run("metropolis", 10.0, 10.5)]
    assert speedup(runs, "metropolis", "serial") == 3.0
    assert speedup(runs, "metropolis", "lockstep", predicted=True) == pytest.approx(19 / 10.5)
    assert runs[0].error_pct == pytest.approx(10.0)
    assert same_ranking(runs)
    assert not same_ranking([run("serial", 30.0, 9.0), run("metropolis", 10.0, 10.5)])


def test_bad_workloads_are_refused() -> None:
    with pytest.raises(ValueError, match="walkers or replay"):
        WorkloadSpec("ants", 3, 0.1)
    with pytest.raises(ValueError, match="at least one agent"):
        WorkloadSpec("walkers", 0, 0.1)


@pytest.mark.bench
@pytest.mark.skipif(unavailable_reason() is not None, reason=f"{unavailable_reason()}")
def test_realtime_bench_runs_against_the_local_server(tmp_path: object) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = Path(str(tmp_path)) / "rt.json"
    cmd = [sys.executable, "-m", "metropolis.cli.main", "bench", "realtime", "--walkers", "5", "--replay-agents", "0",
           "--minutes", "1", "-s", "serial", "-s", "metropolis", "--save", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=900)
    runs = json.loads(out.read_text())["runs"]
    assert {r["policy"] for r in runs} == {"serial", "metropolis"}
