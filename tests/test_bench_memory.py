"""`metropolis bench memory` on a tiny Smallville window: every setting and policy runs, the open-loop
comparison bounds the policies by Belady, and the CLI prints both tables and writes CSV and plot."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.bench.memory import POLICIES, MemoryBenchConfig, compare, run_memory_bench
from metropolis.bench.memory_openloop import open_loop
from metropolis.cli.main import app
from metropolis.paths import shared_data_dir

pytestmark = pytest.mark.skipif(
    shared_data_dir(required=False) is None, reason="needs shared/data/smallville (the real town)"
)
TINY = MemoryBenchConfig(agents=(8,), hours=5 / 60, fractions=(0.25,), lora_ranks=(None, 8), schedulers=("lockstep",))


def test_every_setting_runs_every_policy_and_ideal_is_the_floor() -> None:
    rows, sequences = run_memory_bench(TINY)
    assert [r.policy for r in rows] == list(POLICIES) * 2
    assert len({r.llm_calls for r in rows}) == 1  # the same workload under every policy
    for c in compare(rows):
        assert c.time_share_of_ideal <= 1.0 + 1e-9
    by = {(r.lora_rank, r.policy): r for r in rows}
    assert all(by[rank, p].bytes_prefetched == 0 for rank in (None, 8) for p in ("sglang", "lru"))  # on demand
    assert by[None, "id-nohost"].bytes_prefetched == 0 < by[8, "id-nohost"].bytes_prefetched  # adapters only
    assert by[None, "sglang"].recompute_tokens > 0 and by[None, "lru"].recompute_tokens == 0  # no host: recompute
    assert by[None, "sglang"].hit_rate == by[None, "lru"].hit_rate  # same policy, same order: same hits
    assert by[8, "lru"].bytes_moved > by[None, "lru"].bytes_moved
    assert set(sequences) == {r.setting for r in rows}


def test_open_loop_is_bounded_by_belady() -> None:
    _, sequences = run_memory_bench(TINY)
    out = open_loop(TINY, sequences)
    assert len(out) == 2 and all(r.accesses > 0 for r in out)
    for r in out:
        assert r.hit_rates["belady"] >= max(r.hit_rates["lru"], r.hit_rates["invocation-distance"])
        assert 0 < r.id_share_of_belady <= 1


def test_cli_tiny_prints_the_tables_and_writes_csv_and_png(tmp_path: Path) -> None:
    args = ["bench", "memory", "--tiny", "--fraction", "0.25", "--lora-rank", "0", "-s", "lockstep"]
    result = CliRunner().invoke(app, [*args, "--admission", "lpm", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ID / sglang" in result.output and "open loop" in result.output and "admission lpm" in result.output
    with (tmp_path / "memory.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["policy"] for r in rows] == list(POLICIES)
    assert (tmp_path / "memory.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args", [["--fraction", "1.5"], ["--agents", "x"], ["--demand-loads", "sometimes"], ["--admission", "sjf"]]
)
def test_cli_rejects_bad_input(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["bench", "memory", "--tiny", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
