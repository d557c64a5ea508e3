"""A generated day of the 25 Smallville agents has the paper's figures, within 10%."""

from __future__ import annotations

import pytest

from metropolis.paths import shared_data_dir

PAPER = {"calls": 56_700, "prompt": 642.6, "output": 21.9, "busy": 5_000, "quiet": 800}

pytestmark = pytest.mark.skipif(
    shared_data_dir(required=False) is None, reason="needs shared/data/smallville (the real town)"
)


def test_a_day_of_25_agents_matches_the_paper() -> None:
    from metropolis.workloads import DayConfig, generate
    from metropolis.world.smallville import load_smallville

    workload, _ = generate(load_smallville(), DayConfig(agents=25))
    hours = workload.calls_per_hour()
    got = {
        "calls": workload.calls,
        "prompt": float(workload.call_prompt.mean()),
        "output": float(workload.call_output.mean()),
        "busy": hours[12],
        "quiet": hours[6],
    }
    print({k: round(v, 1) for k, v in got.items()})
    for key, want in PAPER.items():
        assert abs(got[key] - want) <= 0.1 * want, f"{key}: {got[key]:.1f} vs the paper's {want}"
