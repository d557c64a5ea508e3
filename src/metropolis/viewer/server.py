"""The viewer's web app: one static page and a small JSON API over a `StepSource`, plus server-sent events
that say how many frames are complete while a run goes on.

Bound to 127.0.0.1 only: the view is read-only, but a run's prompts are nobody else's business. The server runs
in a daemon thread, so `metropolis run --view` serves while the run runs in the main thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from metropolis.trace.schema import STEPS_SCHEMA
from metropolis.viewer.frames import Timeline, frames
from metropolis.viewer.source import StepSource, TraceSource
from metropolis.viewer.talks import from_steps as talks_steps
from metropolis.viewer.talks import from_table as talks_table

HOST = "127.0.0.1"
MAX_WINDOW = 500  # frames per request
# How often the live stream looks at the run: each look that finds a new frame costs the page's request for it
# (about 6 ms of the server's time for 25 agents, HTTP included, most of it fixed; 17 ms while windows became
# DataFrames), so twice a second is about 1 % of a core (`metropolis bench view`).
LIVE_TICK_S = 0.5
STATIC = ("index.html", "viewer.js", "viewer.css")
TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    present = [c for c in columns if c in frame.columns]
    clean = frame[present].astype(object).where(frame[present].notna(), None)
    return [dict(zip(present, row, strict=True)) for row in clean.itertuples(index=False)]


class _Cache:
    """The timeline of a finished trace is read once; a live one is rebuilt when frames were added, or a window
    starts before it, from the window's first frame on (a page following the run asks for the newest frame: its
    look costs the steps since then, not the whole run)."""

    def __init__(self, source: StepSource, agents: int) -> None:
        self.source, self.agents = source, agents
        self.fixed = isinstance(source, TraceSource)
        self.timeline: Timeline | None = None
        self.at = -1
        self.since = 0

    def get(self, first: int) -> Timeline:
        if self.fixed:
            if self.timeline is None:
                self.timeline = Timeline.of(self.source.timeline(), self.agents)
            return self.timeline
        done = self.source.complete()
        if self.timeline is None or done != self.at or first < self.since:
            since = max(0, first - 1)
            self.timeline = Timeline.of(self.source.timeline(since), self.agents, self.source.before(since))
            self.at, self.since = done, since
        return self.timeline


@dataclass(frozen=True, slots=True)
class PlayerHook:
    """A person in the town (`run --view --player NAME`): which agent it is, and where the page's commands go
    (`push` takes the JSON form of a command and raises ValueError on a bad one)."""

    agent: int
    push: Callable[[Mapping[str, Any]], None]


def make_app(source: StepSource, town: dict[str, Any], player: PlayerHook | None = None) -> FastAPI:
    app = FastAPI(title="Metropolis viewer", docs_url=None, redoc_url=None, openapi_url=None)
    # Frames of 1,000 agents are ~20 kB of JSON each and compress about tenfold; the event stream is left alone.
    # Level 1: at level 9 (the default) compressing took a tenth of a live view's cost, for a few percent of size.
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=1)
    info = source.describe()
    agents = len(info["agents"])
    cache = _Cache(source, agents)
    files = resources.files("metropolis.viewer") / "static"

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (files / "index.html").read_text(encoding="utf-8")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"no file {name}")
        return Response((files / name).read_text(encoding="utf-8"), media_type=TYPES[name.rsplit(".", 1)[1]])

    @app.get("/api/run")
    def run() -> dict[str, Any]:
        return {**info, "complete": source.complete(), "player": None if player is None else player.agent}

    @app.post("/api/player")
    async def command(request: Request) -> dict[str, Any]:
        """The player's input: {"move": [dx, dy]}, {"goto": [x, y]} or {"say": TEXT, "to": NAME or null}; its
        next step that has not started takes it. The only write the page can make, and only with a player."""
        if player is None:
            raise HTTPException(404, "this run has no player (metropolis run --view --player NAME)")
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError(f"a player command is a JSON object, got {type(body).__name__}")
            player.push(body)
        except (ValueError, TypeError, KeyError) as error:
            raise HTTPException(400, f"bad player command: {error}") from None
        return {"queued": True}

    @app.get("/api/map")
    def town_map() -> dict[str, Any]:
        return town

    @app.get("/api/frames")
    def window(first: int = 0, last: int = 100, sched: bool = True) -> Response:
        """Frames as plain JSON: built of lists and ints already, so FastAPI's encoder (which walks every value
        in Python, the larger part of a live view's cost) is skipped."""
        first = max(0, first)
        last = min(last, source.complete(), first + MAX_WINDOW)
        rows = source.window(first, last) if last > first else STEPS_SCHEMA.empty_table()
        body = frames(rows, first, max(first, last), agents, cache.get(first) if sched else None, info)
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")

    @app.get("/api/agent/{agent}")
    def agent(agent: int, upto: int | None = None) -> JSONResponse:
        if not 0 <= agent < agents:
            raise HTTPException(404, f"no agent {agent}; agents are 0..{agents - 1}")
        mine = source.history(agent).sort_values("step")
        if upto is not None:
            mine = mine[mine["step"] <= upto]
        changed = mine[mine["action"].astype(str) != mine["action"].astype(str).shift()]
        calls = source.calls(agent)
        table = source.conversations(agent)
        names = info["agents"]
        talks = talks_table(table, agent, names) if len(table) else talks_steps(mine, agent)
        body = {
            "agent": agent,
            "name": info["agents"][agent],
            "actions": _records(changed, ["step", "action", "x", "y"]),
            "calls": _records(calls.sort_values("step") if len(calls) else calls, CALL_COLUMNS),
            "conversations": talks,
        }
        return JSONResponse(_plain(body))

    @app.get("/api/live")
    async def live(request: Request) -> StreamingResponse:
        """Events `complete` with the number of complete frames as id and data; a reload resumes after
        Last-Event-ID, so the page fetches each frame once. Under speculation, events `spec` (no id: a picture
        of now, not a frame) say which steps run ahead of their blockers, the rollbacks since the last one, and
        the counts so far; a reload starts from the picture of now."""
        seen = int(request.headers.get("last-event-id") or -1)

        async def events() -> AsyncIterator[str]:
            nonlocal seen
            yield "retry: 500\n\n"
            rolled, said = sys.maxsize, ""  # rollbacks before this connection are not flashed again
            while not await request.is_disconnected():
                done = source.complete()
                if done != seen:
                    seen = done
                    yield f"id: {done}\nevent: complete\ndata: {done}\n\n"
                picture = source.speculation(rolled)
                if picture is not None:
                    rolled = picture["seq"]
                    text = json.dumps(picture, separators=(",", ":"))
                    if text != said:
                        said = text
                        yield f"event: spec\ndata: {text}\n\n"
                if done >= info["until"]:
                    yield "event: end\ndata: end\n\n"
                    return
                await asyncio.sleep(LIVE_TICK_S)

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


CALL_COLUMNS = ["step", "function", "prompt_tokens", "output_tokens", "start", "end", "prompt", "output"]


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (from Arrow lists) as JSON values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def serve(app: FastAPI, port: int | None = None) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Start serving on 127.0.0.1 in a daemon thread; returns the URL once the server listens."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="metropolis-viewer", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    if not server.started:
        raise OSError(f"the viewer could not listen on {HOST}:{port} (is the port taken?)")
    return f"http://{HOST}:{port}/", server, thread
