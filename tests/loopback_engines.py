"""A loopback server following the documented contract of llama-server's slot actions (success bodies and the
errors: unknown slot, unknown file, unknown action). Run on 127.0.0.1 by uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def slots_app(slots: int) -> Starlette:
    kv: list[int] = [0] * slots  # tokens cached per slot
    files: dict[str, int] = {}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": status, "message": message}}, status_code=status)

    async def slot_action(request: Request) -> JSONResponse:
        slot = int(request.path_params["slot"])
        if not 0 <= slot < slots:
            return error(400, "Invalid slot ID")
        action = request.query_params.get("action")
        body = await request.json()
        name = body.get("filename")
        if action == "save":
            files[name] = kv[slot] or 600
            return JSONResponse({"id_slot": slot, "filename": name, "n_saved": files[name], "n_written": 1,
                                 "timings": {"save_ms": 1.0}})  # fmt: skip
        if action == "restore":
            if name not in files:
                return error(400, "failed to restore slot, could not open file")
            kv[slot] = files[name]
            return JSONResponse({"id_slot": slot, "filename": name, "n_restored": kv[slot], "n_read": 1,
                                 "timings": {"restore_ms": 2.0}})  # fmt: skip
        if action == "erase":
            n, kv[slot] = kv[slot], 0
            return JSONResponse({"id_slot": slot, "n_erased": n})
        return error(400, "Invalid action")

    return Starlette(routes=[Route("/slots/{slot}", slot_action, methods=["POST"])])


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Serve `app` on a free loopback port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the loopback server did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
