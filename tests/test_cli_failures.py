"""Every command refuses bad input before it starts: exactly one line on stderr, the documented exit code (2),
no traceback, and no run folder or output file left behind. Driven by a table over every command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metropolis.cli.main import app
from metropolis.paths import shared_data_dir

runner = CliRunner()
needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent")
SHARED = shared_data_dir(required=False)

# Placeholders filled per test: FILE is an existing plain file, RUN a finished run folder, FULL a folder with
# other content, UNDERFILE a path whose parent is a file.
FILE, RUN, FULL, UNDERFILE = "<file>", "<run>", "<full>", "<underfile>"

BAD_FLOATS = ["nan", "inf", "-inf", "-1", "1e309"]
BAD_URLS = ["ftp://x", "x", "http://", "http://host:99999/v1", "http://host:abc/v1", "http://:80/v1", "http://h:0/v1"]
BAD_URLS += ["https://[::1/v1"]

RUN_CASES: list[list[str]] = [
    *(["run", "--hours", v] for v in [*BAD_FLOATS, "0", "1e-9", "1e9", "abc", ""]),
    *(["run", "--start-hour", v] for v in ["-1", "24", "25", "nan", "inf", "abc"]),
    *(["run", "--agents", v] for v in ["abc", "0", "-3", "1.5", "26", "10000000"]),
    *(["run", "--gpus", v] for v in ["0", "-1", "abc", "100000"]),
    *(["run", "--scheduler", v] for v in ["nope", "", "SERIAL"]),
    *(["run", "--runtime", v] for v in ["bogus", ""]),
    ["run", "--agent", "bogus"],
    ["run", "--metric", "bogus"],
    ["run", "--preset", "bogus"],
    ["run", "--kind", "bogus", "--llm", "http://127.0.0.1:9/v1"],
    ["run", "--kind", "bogus", "--llm", "local"],
    *(["run", "--llm", v] for v in BAD_URLS),
    ["run", "--runtime", "virtual", "--llm", "local"],
    ["run", "--replay", "/nowhere/run"],
    ["run", "--replay", "<tmp>"],
    ["run", "--replay", RUN],
    ["run", "--replay", "/tmp", "--llm", "local"],
    ["run", "--replay", "/tmp", "--runtime", "asyncio"],
    ["run", "--runtime", "asyncio"],
    ["run", "--runtime", "ray"],
    *(["run", "--price", v] for v in ["abc", "1", "1,2,3", "nan,1", "-1,1", "inf,0", "1,-inf"]),
    *(["run", "--genagent", v] for v in ["x", "bogus=1", "max_retries=abc", "=1"]),
    *(["run", "--timeout", v] for v in ["0", *BAD_FLOATS, "abc", "1e6"]),
    *(["run", "--attempts", v] for v in ["0", "-1", "abc", "1000"]),
    *(["run", "--seed", v] for v in ["abc", "1e3", str(2**70)]),
    ["run", "--out", FILE],
    ["run", "--out", RUN],
    ["run", "--out", FULL],
    ["run", "--out", UNDERFILE],
    ["run", "--bogus"],
    ["run", "extra-argument"],
    ["run", "-n"],
]

BENCH_CASES: list[list[str]] = [
    *(["bench", "scheduler", "-n", v] for v in ["0", "-1", "abc", "100000000", "1e8"]),
    *(["bench", "scheduler", "--agent-steps", v] for v in ["0", "abc", str(10**9)]),
    ["bench", "scheduler", "-s", "bogus"],
    *(["bench", "sim", "--setting", v] for v in [",", "", "bogus", "busy,nope"]),
    *(["bench", "sim", "--agents", v] for v in ["0", "abc", "1,x", "-5"]),
    *(["bench", "sim", "--gpus", v] for v in ["0", "abc"]),
    *(["bench", "sim", "--hours", v] for v in [*BAD_FLOATS, "0", "1e-9", "abc"]),
    ["bench", "sim", "--mode", "bogus"],
    ["bench", "sim", "--metric", "bogus"],
    ["bench", "sim", "--out", FILE],
    ["bench", "sim", "--seed", "abc"],
    *(["bench", "memory", "--agents", v] for v in ["0", "abc"]),
    ["bench", "memory", "--gpus", "0"],
    *(["bench", "memory", "--start-hour", v] for v in ["nan", "-1", "30"]),
    *(["bench", "memory", "--hours", v] for v in ["nan", "0", "30", "-inf"]),
    *(["bench", "memory", "--fraction", v] for v in ["nan", "0", "2", "-1"]),
    ["bench", "memory", "--lora-rank", "-1"],
    ["bench", "memory", "-s", "bogus"],
    ["bench", "memory", "--demand-loads", "bogus"],
    ["bench", "memory", "--admission", "bogus"],
    ["bench", "memory", "--workload", "bogus"],
    ["bench", "memory", "--preset", "bogus"],
    *(["bench", "memory", "--policies", v] for v in ["bogus", ","]),
    ["bench", "memory", "--out", FILE],
    *(["bench", "memory", "--lora-load-ms", v] for v in ["nan", "-1"]),
    ["bench", "bogus"],
    *(["bench", "realtime", "--walkers", v] for v in ["-1", "abc"]),
    *(["bench", "realtime", "--minutes", v] for v in ["0", "nan", "-1"]),
    ["bench", "realtime", "-s", "bogus"],
    ["bench", "realtime", "--walkers", "0", "--replay-agents", "0"],
    ["bench", "realtime", "--serving", "/nowhere/serving.json"],
    ["bench", "realtime", "--save", "/tmp"],
]

CALIBRATE_CASES: list[list[str]] = [
    ["calibrate", "--kind", "bogus"],
    *(["calibrate", "--llm", v] for v in ["ftp://x", "http://h:99999/v1", "nowhere"]),
    *(["calibrate", "--prompt-tokens", v] for v in ["0", "abc", ",", "1000000000"]),
    *(["calibrate", "--output-tokens", v] for v in ["0", "abc"]),
    *(["calibrate", "--concurrency", v] for v in ["0", "2", "abc", "100000"]),
    *(["calibrate", "--repeats", v] for v in ["0", "-1", "abc"]),
    ["calibrate", "--save", "/tmp"],
    ["calibrate", "--save", UNDERFILE],
    *(["calibrate", "--timeout", v] for v in ["0", "nan", "-1"]),
]

TRACE_CASES: list[list[str]] = [
    ["trace", "show", "/nowhere/trace"],
    ["trace", "show", FILE],
    *(["trace", "show", "/tmp", "--rows", v] for v in ["-3", "abc"]),
    ["trace", "stats", "/nowhere/trace"],
    *(["trace", "stats", FILE, "--radius", v] for v in ["nan", "-1", "0", "inf"]),
    *(["trace", "import-movement", "--out", "<tmp>/m", "--radius", v] for v in ["nan", "inf", "0", "-1"]),
    ["trace", "import-movement", "--out", "<tmp>/m", "/nowhere/movement.json"],
    ["trace", "import-movement", "--out", FILE],
    ["trace", "import-genagents", "--out", "<tmp>/g", "/nowhere/redis.json"],
    ["trace", "import-genagents", "--out", FILE],
    ["trace", "import-genagents", "--out", "<tmp>/g", "--tokenizer", "bogus", "/nowhere/redis.json"],
    ["trace", "stats"],
    ["trace", "bogus"],
]

ALL = RUN_CASES + BENCH_CASES + CALIBRATE_CASES + TRACE_CASES


def test_the_table_is_large() -> None:
    assert len(ALL) >= 150


def _fill(args: list[str], tmp: Path) -> list[str]:
    (tmp / "a-file.txt").write_text("not a folder\n")
    run = tmp / "old-run"
    (run / "trace").mkdir(parents=True)
    (run / "report.json").write_text("{}")
    full = tmp / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine\n")
    places = {FILE: tmp / "a-file.txt", RUN: run, FULL: full, UNDERFILE: tmp / "a-file.txt" / "x"}
    return [str(places[a]) if a in places else a.replace("<tmp>", str(tmp)) for a in args]


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@needs_data
@pytest.mark.parametrize("args", ALL, ids=[" ".join(a) or "-" for a in ALL])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert SHARED is not None
    monkeypatch.setenv("METROPOLIS_SHARED", str(SHARED))
    filled = _fill(args, tmp_path)
    before = _snapshot(tmp_path)
    result = runner.invoke(app, filled)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("metropolis: error: "), lines
    assert "Traceback" not in result.output
    assert _snapshot(tmp_path) == before, "a refused command left files behind"


def test_the_error_line_never_holds_an_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-very-secret-key-0123456789\r\n"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    result = runner.invoke(app, ["run", "--llm", "http://127.0.0.1:9/v1", "--kind", "openai"])
    assert result.exit_code == 2, result.output
    assert "very-secret" not in result.output and "$OPENAI_API_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bare_group_prints_its_help() -> None:
    result = runner.invoke(app, ["bench"])
    assert result.exit_code == 2 and "scheduler" in result.output


def test_help_documents_the_exit_codes_and_the_new_options() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for word in ("--timeout", "--attempts", "--force", "130 interrupted"):
        assert word in result.output, word
    assert os.environ.get("METROPOLIS_TRACEBACK") is None


SUBPROCESS_CASES = [
    ["run", "--agents", "abc"],
    ["run", "--hours", "inf"],
    ["bench", "sim", "--setting", ","],
    ["trace", "show", "/nowhere", "--rows", "-3"],
]


@needs_data
@pytest.mark.parametrize("args", SUBPROCESS_CASES, ids=" ".join)
def test_the_real_exit_path_is_one_line_and_exit_2(args: list[str], tmp_path: Path) -> None:
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "METROPOLIS_SHARED": str(SHARED)}
    done = subprocess.run(
        [sys.executable, "-m", "metropolis.cli.main", *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("metropolis: error: ")
    assert done.stdout == "" and list(tmp_path.iterdir()) == []
