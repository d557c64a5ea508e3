"""A loopback OpenAI-compatible server with a fixed latency, for benchmarks that must not measure a model: every
`POST .../chat/completions` is answered after `delay` seconds with a short fixed reply and its usage block.

Run as its own process (`python -m metropolis.bench.loopback_llm --delay 1.0`: prints its port, serves until
its stdin closes), started by `LoopbackLLM` with a pipe as stdin: whatever ends the bench (even kill -9) closes
the pipe, so the server never outlives it. Plain
asyncio streams (HTTP/1.1 keep-alive): thousands of requests in flight cost it little CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from types import TracebackType

REPLY = json.dumps(
    {
        "id": "loopback",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1},
    }
).encode()


class LoopbackLLM:
    """The server in a child process, as a context manager; `base_url` while inside."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LoopbackLLM:
        command = [sys.executable, "-m", "metropolis.bench.loopback_llm", "--delay", str(self.delay)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._process = process
        assert process.stdout is not None
        port = process.stdout.readline().decode().strip()
        if not port.isdigit():
            process.kill()
            raise RuntimeError("the loopback LLM server did not start")
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(delay)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(REPLY), REPLY)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: _connection(r, w, delay), "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # the parent closed our stdin (or died): stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=1.0)
    asyncio.run(_serve(parser.parse_args().delay))


if __name__ == "__main__":
    main()
