"""`metropolis bench memory` in its tiny mode: every setting and policy runs, the table, CSV and plot appear."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from metropolis.bench.memory import POLICIES, MemoryBenchConfig, compare, run_memory_bench
from metropolis.cli.main import app


def test_every_setting_runs_every_policy_and_ideal_is_the_floor() -> None:
    cfg = MemoryBenchConfig(agents=8, steps=12, fractions=(0.25,), lora_ranks=(None, 8), schedulers=("metropolis",))
    rows = run_memory_bench(cfg)
    assert [r.policy for r in rows] == list(POLICIES) * 2
    assert len({r.llm_calls for r in rows}) == 1  # the same simulation under every policy
    for c in compare(rows):
        assert c.time_share_of_ideal <= 1.0 + 1e-9
    lru = [r for r in rows if r.policy == "lru"]
    assert all(r.bytes_prefetched == 0 for r in lru)  # LRU loads on demand only
    with_lora = next(r for r in rows if r.lora_rank and r.policy == "lru")
    without = next(r for r in rows if not r.lora_rank and r.policy == "lru")
    assert with_lora.bytes_moved > without.bytes_moved


def test_cli_tiny_prints_the_table_and_writes_csv_and_png(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "memory", "--tiny", "--fraction", "0.25", "-s", "metropolis", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "ID speedup / LRU" in result.output
    with (tmp_path / "memory.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["policy"] for r in rows] == list(POLICIES) * 2
    assert (tmp_path / "memory.png").stat().st_size > 1000


def test_cli_rejects_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "memory", "--tiny", "--fraction", "1.5", "--out", str(tmp_path)])
    assert result.exit_code == 2
