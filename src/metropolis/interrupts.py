"""Critical sections that Ctrl-C and SIGTERM wait for.

A run turns SIGINT and SIGTERM into exceptions raised wherever the main thread is, so that it can save a last
checkpoint and say where it stopped. A few steps must not be cut in half by one: a batch of trace records taken
out of their buffer but not yet handed to the part writer would be lost, and the checkpoint that follows would
claim steps its parts do not hold. Inside `signals_deferred()` both signals are held: their handlers are
swapped for one that only notes the signal, and as the block ends the handlers are put back and each noted
signal is raised again, so the exception comes right after, with nothing half done.

Why the handlers and not the signal mask (`pthread_sigmask`): a mask is the calling thread's, and a signal sent
to the process goes to any thread that does not block it (the checkpoint's I/O thread, the progress bar's).
Python's C-level handler runs there and only flags the signal; the main thread then runs the Python handler at
its next instruction, inside the section all the same. That cut a checkpoint's trace part in half: its steps
sealed, the calls of those steps not, so a resumed run (which skips the steps its parts hold) lost the calls.
A Python handler runs only on the main thread, so swapping it there holds the signal whichever thread the
kernel picked. A signal flagged before the section (its handler not yet run) is held too: the handler that
runs is the one in place when it runs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

DEFERRED = (signal.SIGINT, signal.SIGTERM)

_held: list[int] | None = None  # while a section runs: the signals that came, in order (main thread only)


def _hold(signum: int, frame: FrameType | None) -> None:
    if _held is not None and signum not in _held:
        _held.append(signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs; raise them as it ends. Nested blocks hold with the
    outermost. Off the main thread there is nothing to hold: no Python signal handler runs there."""
    global _held
    if _held is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    _held = held
    previous: dict[int, Any] = {}  # the handlers swapped out, to put back
    try:
        for signum in DEFERRED:
            handler = signal.getsignal(signum)
            if handler is signal.SIG_IGN or handler is None:  # ignored, or set outside Python: left alone
                continue
            previous[signum] = signal.signal(signum, _hold)
        yield
    finally:
        for swapped, handler in previous.items():
            signal.signal(swapped, handler)
        _held = None
        for came in held:  # the handler put back runs now, at once (a default one ends the process)
            signal.raise_signal(came)
