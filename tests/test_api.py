"""`metropolis.simulate`: one call runs agents and gives back the report, the books, the trace and the reporters."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import metropolis
from metropolis.agents import RandomWalker, WalkerConfig
from metropolis.llm.accounting import PRICE_TABLE, Prices


def walkers(n: int = 6, call_prob: float = 0.3) -> list[RandomWalker]:
    return [RandomWalker(f"w{i}", (3 * i, 3 * i), WalkerConfig(call_prob=call_prob)) for i in range(n)]


def test_a_virtual_run_in_one_call(tmp_path: Path) -> None:
    result = metropolis.simulate(
        walkers(), steps=20, price="gpt-4o-mini", out=tmp_path,
        model_reporters={"moving": lambda rs: sum(r.state.action == "walking" for r in rs)},
        agent_reporters={"pos": "pos"}, every=5,
    )  # fmt: skip
    assert result.report.agent_steps == 120 and result.report.runtime == "virtual"
    assert len(result.calls) == result.report.llm_calls == result.accounting.total().calls > 0
    assert list(result.model["step"]) == [0, 5, 10, 15] and len(result.agents) == 4 * 6
    assert result.accounting.cost() is not None and "cost per sim day" in result.summary()
    assert {p.name for p in (tmp_path / "trace").iterdir()} >= {"steps.parquet", "model.parquet", "agents.parquet"}


def test_the_reporters_agree_under_every_policy() -> None:
    def frames(scheduler: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        r = metropolis.simulate(
            walkers(8), scheduler=scheduler, steps=30, every=3, agent_reporters={"pos": "pos", "seen": "observed"},
            model_reporters={"calls": lambda rs: sum(x.llm_calls for x in rs)},
        )  # fmt: skip
        return r.model, r.agents

    serial = frames("serial")
    for scheduler in ("lockstep", "metropolis"):
        other = frames(scheduler)
        pd.testing.assert_frame_equal(serial[0], other[0])
        pd.testing.assert_frame_equal(serial[1], other[1])


def test_no_llm_runs_agents_that_never_call_one() -> None:
    result = metropolis.simulate(walkers(call_prob=0.0), llm=None, hours=0.01)
    assert result.report.agent_steps == 6 * 4 and result.report.llm_calls == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 5, "hours": 1.0}, "hours=... or steps=..., not both"),
        ({}, "hours=... or steps=..., not both"),
        ({"steps": 0}, "at least one step"),
        ({"steps": 5, "world": "moon"}, "unknown world kind 'moon'"),
        ({"steps": 5, "llm": "virtual:h100"}, "serving preset"),
        ({"steps": 5, "price": "gpt-9"}, "PROMPT,COMPLETION"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metropolis.simulate(walkers(), **kwargs)  # type: ignore[arg-type]


def test_prices_by_name_or_by_number() -> None:
    assert Prices.parse("gpt-4o-mini") == PRICE_TABLE["gpt-4o-mini"] == Prices(0.15, 0.6)
    assert Prices.parse("1,2.5") == Prices(1.0, 2.5)
    with pytest.raises(ValueError, match="within"):
        Prices.parse("nan,1")
