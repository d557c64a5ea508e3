"""The viewer and the report in a real browser: Playwright driving Debian's headless `chromium`.

`playwright install` cannot download browsers here, so the tests point Playwright at /usr/bin/chromium (install.sh
installs it); without Playwright or chromium they skip and say which is missing. Screenshots of the replay, the
live view and the report are saved under each test's tmp folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from metropolis.paths import shared_data_dir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
SRC = Path(__file__).resolve().parents[1] / "src"
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data (Smallville) is absent"),
]


def _cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "METROPOLIS_SHARED": str(shared_data_dir(required=False))}
    return subprocess.Popen(
        [sys.executable, "-m", "metropolis.cli.main", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"http://[\d.]+:\d+/", line)
        if found:
            return found.group(0)
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read() if proc.stderr else ''}")


def _line(proc: subprocess.Popen[str], words: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if words in line:
            return line
    return ""


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)  # once seen past 20 s at the end of a loaded suite (cause not found; see the notes)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
        if proc.stderr is not None:  # shown with the failure: what the command said before it stopped answering
            said = proc.stderr.read()[-4000:]
            print(f"killed after Ctrl-C went unanswered; its stderr ends:\n{said}", file=sys.stderr)
        return code


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    proc = _cli(["run", "--hours", "0.2", "--out", str(out)], out.parent)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1500, "height": 1050})
    page.errors = []  # console errors and uncaught exceptions
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    page.close()


def _trace_positions(folder: Path, step: int) -> list[list[int]]:
    steps = pd.read_parquet(folder / "trace" / "steps.parquet")
    at = steps[steps["step"] == step].sort_values("agent")
    return [[int(x), int(y)] for x, y in zip(at["x"], at["y"], strict=True)]


def _scrub(page: Any, step: int) -> None:
    page.eval_on_selector("#slider", f"(e) => {{ e.value = {step}; e.dispatchEvent(new Event('input')); }}")
    page.wait_for_function(f"window.viewer.shown === {step}")


def _not_blank(page: Any) -> int:
    """How many different colours the town canvas has in a sample of its pixels."""
    return int(page.evaluate(
        """() => { const c = document.getElementById('town'), d = c.getContext('2d').getImageData(0, 0, c.width,
        c.height).data, seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] << 16 | d[i + 1] << 8
        | d[i + 2]); return seen.size; }"""
    ))  # fmt: skip


def test_the_replay_shows_the_run(run_folder: Path, page: Any, tmp_path: Path) -> None:
    proc = _cli(["view", str(run_folder)], run_folder.parent)
    try:
        url = _url(proc)
        assert url.startswith("http://127.0.0.1:")
        page.goto(url)
        page.wait_for_function("window.viewer && window.viewer.ready")
        assert _not_blank(page) > 5
        assert page.locator("#agents li").count() == 25
        for step in (0, 37, 71):
            _scrub(page, step)
            assert page.evaluate("window.viewer.drawn") == _trace_positions(run_folder, step)
        # Click the marker of an agent that called the LLM: its calls appear.
        calls = pd.read_parquet(run_folder / "trace" / "calls.parquet")
        agent = int(calls["agent"].value_counts().index[0])
        x, y = page.evaluate(f"window.viewer.drawn[{agent}]")
        scale = page.evaluate("document.getElementById('town').width") / 140
        box = page.locator("#town").bounding_box()
        # Markers may overlap: click where this one is, then check the agent chosen is one standing there.
        page.mouse.click(box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale)
        page.wait_for_selector("#calls")
        name = page.inner_text("#who")
        who = next(i for i, n in enumerate(_names(run_folder)) if n == name)
        assert page.evaluate(f"window.viewer.drawn[{who}]") == [x, y]
        want = int((calls["agent"] == who).sum())
        assert f"LLM calls ({want})" in page.inner_text("#calls")
        # Who talks to whom: the pairs drawn at a step are the trace's partners there, listed beside the map.
        step, pairs = _talks(run_folder)
        _scrub(page, step)
        assert page.evaluate("window.viewer.talks") == pairs
        a, b = pairs[0]
        names = _names(run_folder)
        assert f"{names[a]} ↔ {names[b]}" in page.inner_text("#talks")
        page.screenshot(path=str(tmp_path / "replay.png"))
        assert page.errors == []
    finally:
        _stop(proc)


def _talks(folder: Path) -> tuple[int, list[list[int]]]:
    """The step with the most conversations, and its [a, b] pairs (a < b) from the trace's partners."""
    steps = pd.read_parquet(folder / "trace" / "steps.parquet", columns=["agent", "step", "partners"])
    talking = steps[steps["partners"].map(len) > 0]
    step = int(talking["step"].value_counts().index[0])
    here = talking[talking["step"] == step]
    rows = zip(here["agent"].tolist(), here["partners"], strict=True)
    pairs = {(min(a, int(b)), max(a, int(b))) for a, ps in rows for b in ps}
    return step, [list(p) for p in sorted(pairs)]


def _names(folder: Path) -> list[str]:
    import json

    return list(json.loads((folder / "trace" / "meta.json").read_text())["agent_names"])


def test_the_server_listens_on_loopback_only(run_folder: Path) -> None:
    proc = _cli(["view", str(run_folder)], run_folder.parent)
    try:
        port = int(_url(proc).rsplit(":", 1)[1].strip("/"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outward interface's address
            outward = s.getsockname()[0]
        if outward.startswith("127."):
            pytest.skip("this machine has no address but loopback")
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((outward, port))
    finally:
        _stop(proc)


def test_a_bad_run_folder_is_one_line(tmp_path: Path) -> None:
    proc = _cli(["view", str(tmp_path)], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert err.strip().count("\n") == 0 and "not a run folder" in err


def test_the_live_view_advances_and_ends_on_the_trace(page: Any, tmp_path: Path) -> None:
    with _followed(page, tmp_path / "live") as out:
        history = page.evaluate("window.viewer.history")
        page.wait_for_function("window.viewer.shown === 1079")
        page.screenshot(path=str(tmp_path / "live.png"))
        assert history == sorted(history) and history[-1] == 1080
        assert page.evaluate("window.viewer.drawn") == _trace_positions(out, 1079)
        page.reload()  # a reload resumes: every frame is there, the last one is the trace's
        page.wait_for_function("window.viewer && window.viewer.ready && window.viewer.finished === true")
        page.wait_for_function("window.viewer.shown === 1079")
        assert page.evaluate("window.viewer.drawn") == _trace_positions(out, 1079)
        assert page.errors == []


@contextlib.contextmanager
def _followed(page: Any, out: Path) -> Iterator[Path]:
    """`metropolis run --hours 3 --view --out OUT`, followed by `page` to its end (its trace and report written);
    yields OUT, then stops the view, which must end cleanly."""
    proc = _cli(["run", "--hours", "3", "--no-compare", "--view", "--out", str(out)], out.parent)
    try:
        page.goto(_url(proc))
        page.wait_for_function("window.viewer && window.viewer.ready")
        page.wait_for_function("window.viewer.finished === true", timeout=180_000)
        # the run writes its trace files (joining the checkpointed parts) and its report after the last frame
        assert "shows the finished run" in _line(proc, "shows the finished run")
        yield out
    finally:
        assert _stop(proc) == 0


def test_a_hidden_live_page_fetches_nothing_until_shown(page: Any, tmp_path: Path) -> None:
    """A live page in a background tab asks for no frames while the run goes, and shows the newest once seen."""
    page.add_init_script(
        "window.__hidden = true; Object.defineProperty(document, 'hidden', {get: () => window.__hidden})"
    )
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/frames" in r.url else None)
    with _followed(page, tmp_path / "hidden") as out:
        assert len(page.evaluate("window.viewer.history")) > 1 and len(asked) <= 1  # the frame drawn on opening
        page.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
        page.wait_for_function("window.viewer.shown === 1079")
        assert page.evaluate("window.viewer.drawn") == _trace_positions(out, 1079)
        assert page.errors == []


def test_the_report_opens_from_disk(run_folder: Path, page: Any, tmp_path: Path) -> None:
    page.goto((run_folder / "report.html").as_uri())
    headline = page.inner_text(".headline")
    assert re.match(r"\d+ min of town time, modelled on 1 L4, took .*; serial would take .*x", headline)
    assert page.locator("img").count() >= 2
    assert page.evaluate("[...document.images].every((i) => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert page.errors == []


BIG = 1_000  # agents: bench sim's busy hour at its largest, 40 copies of the town joined by corridors


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 steps of the busy hour with 1,000 agents (virtual time), recorded as a trace."""
    from metropolis.agents.replay import replay_simulation
    from metropolis.kernel import Environment
    from metropolis.llm.serving import Cluster, VirtualLLM, preset
    from metropolis.runtime import VirtualRuntime
    from metropolis.trace import TraceRecorder
    from metropolis.workloads import DayConfig, generate
    from metropolis.world.smallville import load_smallville

    out = tmp_path_factory.mktemp("big") / "r"
    config = DayConfig(agents=BIG, start_hour=12.0, hours=0.05, mode="large", seed=0)
    workload, layout = generate(load_smallville(), config)
    sim = replay_simulation(workload, layout.world(config.perception_radius), "metropolis")
    recorder = TraceRecorder.for_simulation(sim, out / "trace", run_id="big")
    sim.listeners.append(recorder)
    env = Environment()
    VirtualRuntime(sim, env, VirtualLLM(env, Cluster(env, preset("l4-llama3-8b", gpus=8)))).run()
    recorder.close()
    return out


def test_a_thousand_agents_render_within_bounds(big_run: Path, page: Any, tmp_path: Path) -> None:
    """The replay of 1,000 agents: the town of 40 copies drawn, every marker where the trace says, a frame on the
    wire under 8 kB (gzip) and drawn in under 100 ms, labels only where asked for."""
    wire: dict[str, int] = {}

    def finished(request: Any) -> None:
        if "/api/" in request.url:
            path = request.url.split("/api/", 1)[1].split("?")[0]
            wire[path] = wire.get(path, 0) + request.sizes()["responseBodySize"]

    page.on("requestfinished", finished)
    proc = _cli(["view", str(big_run)], big_run.parent)
    try:
        page.goto(_url(proc))
        page.wait_for_function("window.viewer && window.viewer.ready", timeout=60_000)
        assert page.locator("#agents li").count() == BIG
        assert _not_blank(page) > 5
        for step in (0, 9, 17):
            _scrub(page, step)
            assert page.evaluate("window.viewer.drawn") == _trace_positions(big_run, step)
        frames = int(page.evaluate("document.getElementById('slider').max")) + 1
        assert frames == 18
        assert wire["frames"] / frames < 8_000, wire  # compressed JSON per frame of 1,000 agents
        assert wire["map"] < 200_000, wire  # 600,000 tiles of walls and places
        draw_ms = page.evaluate("(() => { const t = performance.now(); for (let i = 0; i < 10; i++) "
                                "window.viewer.redraw(); return (performance.now() - t) / 10; })()")  # fmt: skip
        assert draw_ms < 100, f"a frame of {BIG} agents took {draw_ms:.0f} ms to draw"
        page.evaluate("window.viewer.select(0)")
        page.wait_for_selector("#conversations")
        page.screenshot(path=str(tmp_path / "thousand.png"))
        assert page.errors == []
    finally:
        _stop(proc)


def test_the_report_of_a_thousand_agents_stays_a_page(big_run: Path, page: Any, tmp_path: Path) -> None:
    """Every path drawn (no labels), the per-agent table folded: the page is a few screens, not 30."""
    from metropolis.report import Headline, write_run_report
    from metropolis.trace import Trace

    trace = Trace.read(big_run / "trace")
    head = Headline(18 * 10.0, 400.0, True, "8 L4", {})
    report = write_run_report(big_run, trace, head, ["(summary)"], {"run_id": "big"}, [])
    page.goto(report.as_uri())
    assert page.locator("img").count() == 2 and "1,000 agents: show the table" in page.inner_text("body")
    assert page.evaluate("[...document.images].every((i) => i.complete && i.naturalWidth > 0)")
    assert page.evaluate("document.documentElement.scrollHeight") < 4_000
    page.screenshot(path=str(tmp_path / "report-thousand.png"), full_page=True)
    assert page.errors == []


def test_a_person_in_the_town_walks_and_talks_from_the_live_view(page: Any, tmp_path: Path) -> None:
    """`run --view --player`: arrow keys and the chat box reach the player's next steps, what it said shows up
    beside the map, and the inputs are recorded with their steps (so the run can be replayed)."""
    from tests.fault_server import FaultServer

    out = tmp_path / "player"
    with FaultServer() as server:
        proc = _cli(
            ["run", "--llm", server.base_url, "-n", "3", "--hours", "0.1", "--no-compare", "--view",
             "--player", "Visitor", "--player-pace", "input", "--player-seconds", "0.3", "--out", str(out)],
            tmp_path,
        )  # fmt: skip
        try:
            view = re.search(r"http://[\d.]+:\d+/", _line(proc, "view:"))  # the LLM's URL is printed before
            assert view is not None
            page.goto(view.group(0))
            page.wait_for_function("window.viewer && window.viewer.ready")
            assert page.is_visible("#player") and page.inner_text("#playerName") == "Visitor"
            page.click("#hover")  # focus the page, not the chat box: arrows move the player
            for key in ("ArrowRight", "ArrowDown", "ArrowLeft"):
                page.keyboard.press(key)
            page.fill("#sayText", "Hello from the browser")
            page.click("#sayButton")
            page.wait_for_function(
                "window.viewer.heard.some((l) => l.includes('Hello from the browser'))", timeout=60_000
            )
            page.screenshot(path=str(tmp_path / "player.png"))
            page.wait_for_function("window.viewer.finished === true", timeout=180_000)
            assert "shows the finished run" in _line(proc, "shows the finished run")  # trace and report written
            assert page.errors == []
        finally:
            assert _stop(proc) == 0
    recorded = [json.loads(line) for line in (out / "trace" / "player.jsonl").read_text().splitlines()]
    assert [c["say"] for c in recorded if "say" in c] == ["Hello from the browser"]
    assert [c["move"] for c in recorded if "move" in c] == [[1, 0], [0, 1], [-1, 0]]
    assert [c["step"] for c in recorded] == sorted(c["step"] for c in recorded)


def test_a_run_without_a_player_refuses_player_commands(run_folder: Path) -> None:
    from fastapi.testclient import TestClient

    from metropolis.viewer.server import PlayerHook, make_app
    from metropolis.viewer.source import TraceSource

    source = TraceSource(run_folder)
    assert TestClient(make_app(source, {})).post("/api/player", json={"move": [1, 0]}).status_code == 404
    pushed: list[object] = []
    client = TestClient(make_app(source, {}, PlayerHook(0, pushed.append)))
    assert client.post("/api/player", json={"move": [1, 0]}).json() == {"queued": True}
    assert client.get("/api/run").json()["player"] == 0 and pushed == [{"move": [1, 0]}]

    def refuse(body: object) -> None:
        raise ValueError("a player command needs one of move, goto or say")

    bad = TestClient(make_app(source, {}, PlayerHook(0, refuse))).post("/api/player", json={"jump": 1})
    assert bad.status_code == 400 and "needs one of move" in bad.json()["detail"]


@pytest.fixture(scope="module")
def speculative_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spec") / "r"
    proc = _cli(["run", "-s", "speculative", "--hours", "0.5", "--no-compare", "--out", str(out)], out.parent)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return out


def _speculative_at(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "trace" / "steps.parquet", columns=["agent", "step", "speculative", "undone"])


def test_a_speculative_replay_shows_its_speculative_steps(speculative_run: Path, page: Any, tmp_path: Path) -> None:
    """The steps drawn as run ahead of their blockers are the trace's, frame by frame; the panel counts them."""
    steps = _speculative_at(speculative_run)
    ahead = steps[steps["speculative"]]
    assert len(ahead), "a speculative run of the town bets on some steps"
    busiest = ahead["step"].value_counts()
    proc = _cli(["view", str(speculative_run)], speculative_run.parent)
    try:
        page.goto(_url(proc))
        page.wait_for_function("window.viewer && window.viewer.ready")
        assert page.is_visible("#specPanel") and "speculative" in page.inner_text("#legend")
        for step in [0, int(busiest.index[-1]), int(busiest.index[0])]:
            _scrub(page, step)
            want = sorted(int(a) for a in ahead.loc[ahead["step"] == step, "agent"])
            assert page.evaluate("window.viewer.spec.shown") == want
        page.screenshot(path=str(tmp_path / "speculative-replay.png"))
        redone = steps[steps["undone"] > 0]
        if len(redone):  # a rollback's re-run is ringed at its step
            step = int(redone["step"].iloc[0])
            _scrub(page, step)
            undone = page.evaluate("window.viewer.frame.undone")
            assert undone == {str(a): int(n) for a, n in redone.loc[redone["step"] == step, ["agent", "undone"]].values}
            page.screenshot(path=str(tmp_path / "speculative-rollback.png"))
        last = int(steps["step"].max())
        _scrub(page, last)
        counts = page.evaluate("window.viewer.spec.counts")
        assert counts["speculative"] == len(ahead) and counts["undone"] == int(steps["undone"].sum())
        assert f"{len(ahead)}</b> of {len(steps)} steps done" in page.inner_html("#specPanel")
        assert page.errors == []
    finally:
        _stop(proc)


def test_the_live_view_of_a_speculative_run_counts_as_it_goes(page: Any, tmp_path: Path) -> None:
    out = tmp_path / "live-spec"
    proc = _cli(["run", "-s", "speculative", "--hours", "2", "--no-compare", "--view", "--out", str(out)], tmp_path)
    try:
        page.goto(_url(proc))
        page.wait_for_function("window.viewer && window.viewer.ready")
        page.wait_for_function("window.viewer.spec.live.length > 3", timeout=120_000)
        page.screenshot(path=str(tmp_path / "speculative-live.png"))
        page.wait_for_function("window.viewer.finished === true", timeout=180_000)
        assert "shows the finished run" in _line(proc, "shows the finished run")
        live = page.evaluate("window.viewer.spec.live")
        for key in ("committed", "speculative", "undone"):
            seq = [c[key] for c in live]
            assert seq == sorted(seq), key  # counts only advance
        assert len({c["committed"] for c in live}) > 3 and len({c["speculative"] for c in live}) > 1
        steps = _speculative_at(out)
        assert live[-1] == {
            "committed": len(steps), "speculative": int(steps["speculative"].sum()),
            "undone": int(steps["undone"].sum()),
        }  # fmt: skip
        assert "now:" in page.inner_text("#specPanel")
        assert page.errors == []
    finally:
        assert _stop(proc) == 0
