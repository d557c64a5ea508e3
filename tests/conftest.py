"""What every test may assume of the process it runs in."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """Tests of Ctrl-C expect what a terminal gives: Python's KeyboardInterrupt handler. A test run started in the
    background of a script (`cmd &`, nohup) inherits SIGINT ignored, which the commands it starts would inherit
    too; a handler (unlike ignoring) is reset to the default in a child at exec, so setting Python's own here
    restores the terminal's behaviour for both."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True)
def signals_unblocked() -> None:
    """Every test starts with SIGINT and SIGTERM deliverable: a mask left by an earlier test (a critical section's
    test) would be inherited by every command a later test starts, which then could not be stopped."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
