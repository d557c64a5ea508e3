"""The window of the `speculative` policy: how far it bets, and what it guesses of a blocker it runs ahead of.

`metropolis bench sim --speculation depth=16,guess=0.1` reads one with `Window.parse`.
"""

from __future__ import annotations

from dataclasses import dataclass

from metropolis.registry import check_name

WINDOW_FIELDS = ("depth", "share", "budget", "guess", "still", "apart")


@dataclass(frozen=True, slots=True)
class Window:
    """How far the policy bets: `depth` steps ahead of GVT, `share` of the running units, `budget` of the tokens
    wasted before the depth halves; `guess` is the share of its possible moves a blocker is assumed to walk
    towards the unit, and `still` (when > 0) the steps after which a blocker that has not moved is assumed to
    stay where it is. `apart` (1, the default; 0: off) bets on the answer, not only on blockers: the agents of a
    cluster run as separate units, betting that none touches another (`ctx.partner`), and are joined again into one
    unit when one does (scheduling/speculative.py)."""

    depth: int = 256
    share: float = 1.0
    budget: float = 0.1
    guess: float = 0.1
    still: int = 0  # a blocker that stood still this many steps is guessed to stay (0: never)
    apart: int = 1  # coupled agents run apart until one touches another (0: clusters run as one unit)

    @classmethod
    def parse(cls, text: str) -> Window:
        """`depth=16,share=0.5` -> a window with those values and the defaults for the rest."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            check_name(name, WINDOW_FIELDS, "speculation window setting")
            try:
                values[name] = float(value) if sep else float("nan")
            except ValueError:
                values[name] = float("nan")
            if values[name] != values[name]:
                raise ValueError(f"speculation window setting {part!r} needs a number: {name}=<value>")
        whole: dict[str, int] = {}
        for name in ("depth", "still", "apart"):
            steps = values.pop(name, None)
            if steps is not None and steps != int(steps):
                unit = "" if name == "apart" else " of steps"
                raise ValueError(f"the speculation {name} is a whole number{unit}, got {steps}")
            if steps is not None:
                whole[name] = int(steps)
        return cls(**whole, **values)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        for name in ("depth", "still"):
            if getattr(self, name) < 0:
                raise ValueError(f"the speculation {name} must be >= 0 steps, got {getattr(self, name)}")
        if self.apart not in (0, 1):
            raise ValueError(f"the speculation setting apart is 0 (off) or 1 (on), got {self.apart}")
        for name in ("share", "budget", "guess"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"the speculation {name} must be between 0 and 1, got {value}")
