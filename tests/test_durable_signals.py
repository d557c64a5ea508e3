"""`interrupts.signals_deferred`: SIGINT and SIGTERM wait until a critical section ends, whichever thread of the
process the kernel hands them to, and are raised as it ends."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType

import pytest

from metropolis.interrupts import signals_deferred


class _Stopped(Exception):
    pass


def _raise(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _sent_from_another_thread(signum: int) -> None:
    """As a run is signalled: to the process, while other threads (the checkpoint's I/O thread) run."""
    sender = threading.Thread(target=os.kill, args=(os.getpid(), signum))
    sender.start()
    sender.join()
    time.sleep(0.05)  # a handler run now would raise here, inside the section


def test_a_signal_sent_to_the_process_waits_for_the_section_and_comes_as_it_ends() -> None:
    previous = signal.signal(signal.SIGTERM, _raise)
    log = []
    try:
        with pytest.raises(_Stopped), signals_deferred():
            _sent_from_another_thread(signal.SIGTERM)
            log.append("section done")
        assert log == ["section done"]
        assert signal.getsignal(signal.SIGTERM) is _raise, "the handler is put back"
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_in_nested_sections_comes_once_after_the_outermost() -> None:
    log = []
    with pytest.raises(KeyboardInterrupt), signals_deferred():
        with signals_deferred():
            _sent_from_another_thread(signal.SIGINT)
            _sent_from_another_thread(signal.SIGINT)
            log.append("inner done")
        log.append("outer done")
    assert log == ["inner done", "outer done"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_signal_a_section_changes_nothing() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with signals_deferred():
        pass
    assert signal.getsignal(signal.SIGTERM) is before


def test_off_the_main_thread_a_section_just_runs() -> None:
    done: list[bool] = []

    def work() -> None:
        with signals_deferred():
            done.append(True)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert done == [True]
