"""`metropolis run --runtime ray` and `metropolis bench distributed` against a loopback server, on the module's
local Ray (2 CPUs): the command joins it with `--ray-address`, and gives the asyncio runtime's calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.cli.main import app
from metropolis.paths import shared_data_dir
from tests.fault_server import FaultServer

needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")
SRC = Path(__file__).resolve().parents[1] / "src"


def test_workers_without_the_ray_runtime_is_refused() -> None:
    result = CliRunner().invoke(app, ["run", "--workers", "2", "--no-compare"])
    assert result.exit_code == 2
    assert "--workers, --ray-address and --unit-timeout are for --runtime ray" in result.output


def test_the_speculative_policy_on_ray_is_refused() -> None:
    """Its bets are held and undone in this process: one line, exit 2, before any work (no server is asked)."""
    result = CliRunner().invoke(
        app, ["run", "--runtime", "ray", "--scheduler", "speculative", "--llm", "http://127.0.0.1:9/v1", "--no-compare"]
    )
    assert result.exit_code == 2
    assert "--scheduler speculative holds and undoes its bets in this process" in result.output
    assert "Traceback" not in result.output


ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    from metropolis.runtime.ray import ray_session

    with ray_session(cpus=2):
        yield ray.get_runtime_context().gcs_address


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "METROPOLIS_SHARED": str(shared_data_dir(required=False))}
    return subprocess.run(
        [sys.executable, "-m", "metropolis.cli.main", *args], cwd=cwd, env=env, text=True, capture_output=True,
        timeout=300,
    )  # fmt: skip


@needs_data
def test_run_on_ray_workers_makes_the_asyncio_runs_calls(ray_address: str, tmp_path: Path) -> None:
    with FaultServer(delay=0.01) as server:
        common = ["--llm", server.base_url, "--agent", "walker", "-n", "8", "--hours", "0.03", "--no-compare"]
        on = ["--runtime", "ray", "--workers", "2", "--ray-address", ray_address, "--unit-timeout", "60"]
        ray_run = _run(["run", *common, *on, "--out", "ray"], tmp_path)
        assert ray_run.returncode == 0, ray_run.stderr
        plain = _run(["run", *common, "--runtime", "asyncio", "--out", "plain"], tmp_path)
        assert plain.returncode == 0, plain.stderr
    on_ray, alone = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("ray", "plain"))
    assert on_ray["runtime"] == "ray"
    for key in ("agent_steps", "llm_calls", "prompt_tokens", "completion_tokens"):
        assert on_ray[key] == alone[key], key
    assert json.loads((tmp_path / "ray" / "meta.json").read_text())["status"] == "completed"


def test_bench_distributed_prints_its_rows(ray_address: str, tmp_path: Path) -> None:
    save = tmp_path / "rows.json"
    args = ["bench", "distributed", "--agents", "4", "--steps", "2", "--cpu-ms", "2", "--latency", "0.01",
            "--many", "20", "--many-steps", "2", "--many-latency", "0.05", "--save", str(save)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(save.read_text())}
    assert rows["ray 2 workers / asyncio"]["value"] > 0
    assert 0 < rows["requests in flight / agents running"]["value"] <= 100
    assert rows["controller CPU per unit"]["value"] > 0
    stores = [name for name in rows if name.startswith("store: ")]  # Redis vs SQLite per commit, a local server
    assert len(stores) == 4 and all(rows[name]["value"] > 0 for name in stores)
