"""A loopback OpenAI-compatible chat server that misbehaves on a schedule, for testing the client over real
HTTP.

Plain asyncio plus h11 (already a dependency of httpx), in a thread with its own event loop, so the faults are
real bytes on real sockets: a request that is never answered, 429 with Retry-After, 500/503, a connection
reset
in the middle of the body, 2xx bodies that are not chat completions.

A `schedule(arrival) -> Fault` decides per attempt; `arrival.attempt` counts earlier arrivals of the same
logical
request (same X-Request-Id). The server counts the complete answers it sent per logical request, the requests
it
held at once, and keeps every arrival's headers and body for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import multiprocessing
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import h11


class Fault(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"  # never answers; waits for the client to hang up
    RATE_LIMIT = "429"
    ERROR_500 = "500"
    ERROR_503 = "503"
    RESET = "reset"  # headers and half the body, then a TCP reset
    BAD_JSON = "bad_json"
    NO_CHOICES = "no_choices"
    NO_USAGE = "no_usage"  # a good answer without the usage block
    BAD_REQUEST = "400"
    UNAUTHORIZED = "401"  # echoes the key it got, as some real servers do


@dataclass(frozen=True, slots=True)
class Arrival:
    request_id: str
    label: str
    agent: str
    step: int | None
    attempt: int
    headers: dict[str, str]
    body: dict[str, Any]


Schedule = Callable[[Arrival], Fault]


def scripted(plan: Callable[[Arrival], list[Fault]]) -> Schedule:
    """A schedule from a per-request plan: attempt k gets `plan(arrival)[k]`; OK once the plan runs out."""

    def schedule(arrival: Arrival) -> Fault:
        faults = plan(arrival)
        return faults[arrival.attempt] if arrival.attempt < len(faults) else Fault.OK

    return schedule


def answer_text(body: dict[str, Any]) -> str:
    """The deterministic reply to a request body: what a clean run must return."""
    last = body["messages"][-1]["content"] if body.get("messages") else ""
    return f"re: {last}"


def _completion(body: dict[str, Any], usage: bool = True) -> dict[str, Any]:
    text = answer_text(body)
    reply: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage:
        prompt = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        reply["usage"] = {"prompt_tokens": prompt, "completion_tokens": len(text.split())}
    return reply


class FaultServer:
    """Serves `/v1/chat/completions` on 127.0.0.1 in a background thread; a context manager."""

    def __init__(self, schedule: Schedule | None = None, delay: float = 0.0, retry_after: str = "0") -> None:
        self.schedule: Schedule = schedule or (lambda _: Fault.OK)
        self.delay = delay
        self.retry_after = retry_after
        self.arrivals: list[Arrival] = []
        self.answered: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.port: int | None = None
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the fault server is not running; use it as a context manager")
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread = threading.Thread(target=self._run, name="fault-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"fault server did not start: {self._error}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await self._connection(reader, writer)
            except asyncio.CancelledError:
                pass  # shutting down; re-raising would only make asyncio log it
            finally:
                handlers.discard(task)

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0, backlog=4096)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(handlers):
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    # -- one connection: requests one after another (keep-alive) ---------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                got = await _read_request(conn, reader)
                if got is None:
                    return
                if not await self._respond(conn, reader, writer, *got):
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            writer.close()

    async def _respond(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        raw: bytes,
    ) -> bool:
        arrival = self._arrive(request, raw)
        fault = self.schedule(arrival)
        self._enter()
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if fault is Fault.TIMEOUT:
                while await reader.read(65536):
                    pass
                return False
            if fault is Fault.RESET:
                await _reset(conn, writer, json.dumps(_completion(arrival.body)).encode())
                return False
            status, payload, headers = self._reply(fault, arrival)
            await _send(conn, writer, status, payload, headers)
            if fault in (Fault.OK, Fault.NO_USAGE):
                with self._lock:
                    self.answered[arrival.request_id] += 1
            return True
        finally:
            self._leave()

    def _reply(self, fault: Fault, arrival: Arrival) -> tuple[int, bytes, list[tuple[str, str]]]:
        def error(status: int, message: str) -> bytes:
            return json.dumps({"error": {"message": message, "code": status}}).encode()

        if fault is Fault.OK or fault is Fault.NO_USAGE:
            return 200, json.dumps(_completion(arrival.body, usage=fault is Fault.OK)).encode(), []
        if fault is Fault.RATE_LIMIT:
            return 429, error(429, "slow down"), [("Retry-After", self.retry_after)]
        if fault is Fault.BAD_JSON:
            return 200, b'{"choices": [{"message": ', []
        if fault is Fault.NO_CHOICES:
            return 200, json.dumps({"id": "x", "choices": []}).encode(), []
        if fault is Fault.BAD_REQUEST:
            return 400, error(400, "max_tokens is too large"), []
        if fault is Fault.UNAUTHORIZED:
            key = arrival.headers.get("authorization", "").removeprefix("Bearer ")
            return 401, error(401, f"Incorrect API key provided: {key}"), []
        return int(fault.value), error(int(fault.value), "server trouble"), []

    def _arrive(self, request: h11.Request, raw: bytes) -> Arrival:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        request_id = unquote(headers.get("x-request-id", ""))
        step = headers.get("x-metropolis-step")
        with self._lock:
            attempt = self._seen[request_id]
            self._seen[request_id] += 1
            arrival = Arrival(
                request_id=request_id,
                label=unquote(headers.get("x-metropolis-request", "")),
                agent=unquote(headers.get("x-metropolis-agent", "")),
                step=int(step) if step is not None else None,
                attempt=attempt,
                headers=headers,
                body=json.loads(raw) if raw else {},
            )
            self.arrivals.append(arrival)
        return arrival

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    status: int,
    payload: bytes,
    extra: list[tuple[str, str]],
) -> None:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *extra]
    out = conn.send(h11.Response(status_code=status, headers=headers))
    out += conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
    writer.write(out)
    await writer.drain()


async def _reset(conn: h11.Connection, writer: asyncio.StreamWriter, payload: bytes) -> None:
    """Promise the whole body, send half, and abort with RST (SO_LINGER 0) instead of a clean FIN."""
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    out = conn.send(h11.Response(status_code=200, headers=headers))
    out += conn.send(h11.Data(data=payload[: len(payload) // 2]))
    writer.write(out)
    await writer.drain()
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultServerProcess:
    """A clean `FaultServer` in a child process, so the server does not share the GIL with the client under
    test.

    Only fault-free serving with a fixed delay: a schedule would have to cross the process boundary. After the
    block, `answered` (complete answers sent) and `max_in_flight` hold the child's counts.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.port: int | None = None
        self.answered = 0
        self.max_in_flight = 0
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the fault server process is not running; use it as a context manager")
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FaultServerProcess:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_in_child, args=(child, self.delay), daemon=True)
        self._process.start()
        if not self._pipe.poll(30):
            self._process.kill()
            raise RuntimeError("fault server process did not report its port within 30 s")
        self.port = self._pipe.recv()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._pipe is not None and self._process is not None
        self._pipe.send("stop")
        if self._pipe.poll(30):
            self.answered, self.max_in_flight = self._pipe.recv()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def _serve_in_child(pipe: Connection, delay: float) -> None:
    with FaultServer(delay=delay) as server:
        pipe.send(server.port)
        pipe.recv()
    pipe.send((sum(server.answered.values()), server.max_in_flight))
