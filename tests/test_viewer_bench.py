"""`metropolis bench view`: the same run with and without the live view (the browser row is exercised by hand and
by the browser tests' live view; here, the rows without it and the command's checks)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from metropolis.bench.view import MODES, run_view_bench, tree_cpu, tree_pids
from metropolis.cli.main import app
from metropolis.paths import shared_data_dir


@pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")
def test_the_view_rows_time_the_same_run() -> None:
    rows = run_view_bench(hours=0.05, repeats=2, browser=False)
    assert [r.mode for r in rows] == list(MODES[:2])
    for r in rows:
        assert len(r.wall) == 2 and all(w > 0 for w in r.wall) and r.median("cpu_ratio") > 0
    assert rows[0].median("wall_ratio") == 1.0


def test_bad_options_are_one_line() -> None:
    result = CliRunner().invoke(app, ["bench", "view", "--repeats", "0", "--no-browser"])
    assert result.exit_code == 2 and "--repeats" in result.output


def test_the_cpu_of_a_process_tree_is_read_from_proc() -> None:
    import os
    import subprocess
    import sys

    assert tree_cpu(os.getpid()) > 0 or not os.path.isdir("/proc")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert {os.getpid(), child.pid} <= set(tree_pids(os.getpid())) or not os.path.isdir("/proc")
    finally:
        child.kill()
        child.wait()
