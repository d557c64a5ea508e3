"""`metropolis bench memory` on a tiny Smallville window: every setting and policy runs, the open-loop
comparison bounds the policies by Belady, and the CLI prints both tables and writes CSV and plot."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.bench.memory import (
    EVICTION_POLICIES,
    MemoryBenchConfig,
    Setting,
    compare,
    default_factory,
    gpu_bytes,
    run_cluster,
    run_memory_bench,
    run_policy,
)
from metropolis.bench.memory_openloop import open_loop
from metropolis.cli.main import app
from metropolis.memory.manager import MemoryStats
from metropolis.paths import shared_data_dir

pytestmark = pytest.mark.skipif(
    shared_data_dir(required=False) is None, reason="needs shared/data/smallville (the real town)"
)
TINY = MemoryBenchConfig(agents=(8,), hours=5 / 60, fractions=(0.25,), lora_ranks=(None, 8), schedulers=("lockstep",))


def test_every_setting_runs_every_policy_and_ideal_is_the_floor() -> None:
    rows, sequences = run_memory_bench(TINY)
    assert [r.policy for r in rows] == list(EVICTION_POLICIES) * 2
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


def test_a_subset_of_policies_runs_in_order_and_the_bound_is_sglang_over_ideal() -> None:
    cfg = dataclasses.replace(TINY, lora_ranks=(None,), policies=("ideal", "sglang"))
    rows, sequences = run_memory_bench(cfg)
    assert [r.policy for r in rows] == ["sglang", "ideal"]
    assert sequences == {}  # no lru run: nothing for the open loop to replay
    (c,) = compare(rows)
    assert c.bound_over_sglang == rows[0].sim_seconds / rows[1].sim_seconds
    assert c.bound_over_sglang > 1.0  # at 25% the SGLang baseline recomputes prefixes the ideal GPU keeps
    assert all(math.isnan(x) for x in (c.speedup_over_sglang, c.speedup_over_lru, c.hit_share_of_belady))
    assert math.isnan(c.bound_over_lru)


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        (("lru", "fifo"), "unknown eviction policy .fifo.; choose one of"),
        ((), "no eviction policy given"),
        (("belady",), "add invocation-distance"),
    ],
)
def test_bad_policy_lists_are_refused(policies: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryBenchConfig(policies=policies)


def test_open_loop_is_bounded_by_belady() -> None:
    _, sequences = run_memory_bench(TINY)
    out = open_loop(TINY, sequences)
    assert len(out) == 2 and all(r.accesses > 0 for r in out)
    for r in out:
        assert r.hit_rates["belady"] >= max(r.hit_rates["lru"], r.hit_rates["invocation-distance"])
        assert 0 < r.id_share_of_belady <= 1


AGENT_BYTES = 600 * 131_072  # one agent's 600-token Llama-3-8B KV prefix


@pytest.mark.parametrize(
    ("agents", "fraction", "gpus", "agent_states"),
    [(8, 0.25, 1, 2), (8, 0.25, 2, 1), (100, 0.1, 4, 2.5), (8, 0.1, 4, 1)],  # the last: at least one agent
)
def test_each_replica_holds_its_share_of_the_fraction(
    agents: int, fraction: float, gpus: int, agent_states: float
) -> None:
    assert gpu_bytes(TINY, agents, fraction, None, gpus) == int(agent_states * AGENT_BYTES)


def test_two_replicas_each_keep_their_own_agents_and_the_cluster_sums_them() -> None:
    make = default_factory(TINY)
    setting = Setting(8, 2, "lockstep", 0.25, None)
    report, cluster = run_cluster(TINY, make, setting, "lru")
    per = [m.stats for m in cluster.memories]
    assert len(per) == 2 and all(s.admissions > 0 and s.hits > 0 for s in per)
    assert [m.manager.tiers.config.gpu_bytes for m in cluster.memories] == [AGENT_BYTES] * 2  # 25% of 8, halved
    assert set(cluster.memories[0].accesses).isdisjoint(cluster.memories[1].accesses)  # agent affinity
    combined = cluster.memory_stats()
    assert combined is not None
    for f in dataclasses.fields(MemoryStats):
        assert getattr(combined, f.name) == sum(getattr(s, f.name) for s in per), f.name
    assert combined.admissions == report.llm_calls
    row, accesses = run_policy(TINY, make, setting, "lru")
    assert (row.gpus, row.setting, row.hit_rate) == (2, setting, combined.hit_rate)
    [replayed] = open_loop(TINY, {setting: accesses})
    assert replayed.accesses == report.llm_calls
    assert replayed.hit_rates["belady"] >= max(replayed.hit_rates["lru"], replayed.hit_rates["invocation-distance"])


def test_cli_tiny_prints_the_tables_and_writes_csv_and_png(tmp_path: Path) -> None:
    args = ["bench", "memory", "--tiny", "--fraction", "0.25", "--lora-rank", "0", "-s", "lockstep"]
    result = CliRunner().invoke(app, [*args, "--admission", "lpm", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ID / sglang" in result.output and "open loop" in result.output and "admission lpm" in result.output
    with (tmp_path / "memory.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["policy"] for r in rows] == list(EVICTION_POLICIES)
    assert (tmp_path / "memory.png").stat().st_size > 1000
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and all(p in page for p in EVICTION_POLICIES)


def test_cli_gpus_adds_a_column_and_a_setting(tmp_path: Path) -> None:
    args = ["bench", "memory", "--tiny", "--gpus", "1,2", "--fraction", "0.25", "--lora-rank", "0", "-s", "lockstep"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "GPUs" in result.output
    with (tmp_path / "memory.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["gpus"], r["policy"]) for r in rows] == [(g, p) for g in ("1", "2") for p in EVICTION_POLICIES]


@pytest.mark.parametrize(
    "args",
    [
        ["--gpus", "0"],
        ["--gpus", "two"],
        ["--fraction", "1.5"],
        ["--agents", "x"],
        ["--demand-loads", "sometimes"],
        ["--admission", "sjf"],
    ],
)
def test_cli_rejects_bad_input(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["bench", "memory", "--tiny", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
