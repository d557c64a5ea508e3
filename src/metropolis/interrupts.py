"""Critical sections that Ctrl-C and SIGTERM wait for.

A run turns SIGINT and SIGTERM into exceptions raised wherever the main thread is, so that it can save a last
checkpoint and say where it stopped. A few steps must not be cut in half by one: a batch of trace records taken
out of their buffer but not yet handed to the part writer would be lost, and the checkpoint that follows would
claim steps its parts do not hold. Inside `signals_deferred()` both signals are blocked (the kernel keeps them
pending) and delivered as the block ends, so the exception comes right after, with nothing half done.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

DEFERRED = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Block SIGINT and SIGTERM for this thread while the block runs (where the platform can)."""
    if not hasattr(signal, "pthread_sigmask"):  # not on POSIX: nothing to block with
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
