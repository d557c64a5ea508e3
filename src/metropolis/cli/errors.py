"""At the command line, a user error is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class UserError(Exception):
    """A problem the user can fix; its message says what and where."""


def one_line_errors(fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (UserError, ValueError, TypeError, FileNotFoundError, PermissionError) as error:
            print(f"metropolis: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("metropolis: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
