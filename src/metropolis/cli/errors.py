"""At the command line every failure is one line on stderr and a documented exit code, never a traceback.

Exit codes (README, "Exit codes"):
- 0: done.
- 2: bad input: an option, a path or a name the user can fix (also click's usage errors).
- 3: a failure at run time: the LLM server is unreachable or refuses, an agent's step raised, the local model
  server did not start, a disk or network error.
- 4: an internal error (a bug): the line names the exception; `METROPOLIS_TRACEBACK=1` shows the traceback.
- 130: interrupted (Ctrl-C); the line says where the run stopped. 143: the same for SIGTERM.

Whatever the message holds, API keys from the environment never reach the screen: they are replaced by `***`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from types import FrameType
from typing import ParamSpec, TypeVar

import typer
from typer._click.exceptions import ClickException

from metropolis.llm.errors import LLMError
from metropolis.llm.local_server import LocalServerUnavailable
from metropolis.runtime.driver import StepFailed
from metropolis.store.base import StaleEpoch

P = ParamSpec("P")
T = TypeVar("T")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

BAD_INPUT = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
             PermissionError, OverflowError)  # fmt: skip
RUN_TIME = (LLMError, StepFailed, LocalServerUnavailable, OSError, MemoryError, StaleEpoch)
MAX_CHARS = 600


class UserError(Exception):
    """A problem the user can fix; its message says what and where."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as Ctrl-C is), so the run stops the same way and says where."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM, caught where the command knows how far it got; the message says where the run stopped."""

    def __init__(self, message: str, code: int = EXIT_INTERRUPTED) -> None:
        super().__init__(message)
        self.code = code


def exit_code(error: BaseException) -> int:
    """The documented exit code for `error` (see the module docstring)."""
    if isinstance(error, Interrupted):
        return error.code
    if isinstance(error, Terminated):
        return EXIT_TERMINATED
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, (UserError, *BAD_INPUT)):
        return EXIT_BAD_INPUT
    if isinstance(error, RUN_TIME):
        return EXIT_FAILED
    return EXIT_INTERNAL


def one_line(text: str) -> str:
    """`text` on one line, secrets scrubbed, the middle of a very long message cut."""
    text = " | ".join(line.strip() for line in scrub(text).splitlines() if line.strip())
    if len(text) > MAX_CHARS:
        text = f"{text[: MAX_CHARS // 2]} ... {text[-MAX_CHARS // 2 :]}"
    return text


def scrub(text: str) -> str:
    """Replace the value of every key-like environment variable (`*_KEY`, `*_TOKEN`) by `***`."""
    for name, value in os.environ.items():
        if name.upper().endswith(("_KEY", "_TOKEN")) and len(value.strip()) >= 6:
            text = text.replace(value, "***").replace(value.strip(), "***")
    return text


def describe(error: BaseException) -> str:
    """The one line printed for `error`."""
    code = exit_code(error)
    if isinstance(error, KeyboardInterrupt):
        return "metropolis: terminated" if isinstance(error, Terminated) else "metropolis: interrupted"
    if isinstance(error, Interrupted):
        return f"metropolis: {one_line(str(error))}"
    message = one_line(str(error)) or type(error).__name__
    if code == EXIT_BAD_INPUT:
        return f"metropolis: error: {message}"
    if code == EXIT_FAILED:
        return f"metropolis: failed: {message}"
    return f"metropolis: internal error: {type(error).__name__}: {message} (set METROPOLIS_TRACEBACK=1 to see where)"


def report(error: BaseException) -> int:
    """Print `error` as one line on stderr and return its exit code; quiet the noise a stopped run leaves."""
    code = exit_code(error)
    if code == EXIT_INTERNAL and os.environ.get("METROPOLIS_TRACEBACK"):
        import traceback

        traceback.print_exception(error)
    print(describe(error), file=sys.stderr)
    quiet_abandoned_work()
    return code


def quiet_abandoned_work() -> None:
    """A run stopped midway drops agent-step coroutines that never started and asyncio tasks still pending;
    Python would warn about each at exit. They are expected after a failure: say nothing about them."""
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside: SIGTERM raises `Terminated` where the program is, so a command stops as on Ctrl-C (closing
    what it holds, recording where it stopped) instead of dying silently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def one_line_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Run a command body: any failure becomes one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (ClickException, typer.Exit, typer.Abort):
            raise  # click's own: the command group prints them as one line
        except (Exception, KeyboardInterrupt) as error:
            raise SystemExit(report(error)) from None

    return wrapper
