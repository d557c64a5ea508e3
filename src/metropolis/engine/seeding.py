"""The generator each agent-step draws from: `random.Random(text)`, text naming (run seed, agent, step).

Every scheduler must reproduce the serial run, so a step's draws depend only on its seed, never on the order in
which steps run. Seeding a Mersenne Twister from a string costs more than most steps do (two Python frames, a
SHA-512 digest and a fold of 1,247 dependent words): about a fifth of the modelled day's CPU in virtual time. The
compiled build carries `_seeding.c`, which builds the same generator in one C call in half the time. It writes
CPython's generator state directly, so it is trusted only after it has built the same states as `random.Random`
here, in this process; otherwise, without a compiled build, or with METROPOLIS_PURE=1, it is `random.Random`.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable

from metropolis.compiled import pure_requested

# Seeds the check compares: the engine's shape, the empty string, non-ASCII text, and text past one digest block.
CHECKED = ("0:0:0", "12345:999:86399", "", "é€𝄞 step", "x" * 300)


def _built_in_c() -> Callable[[type[random.Random], str], random.Random] | None:
    if pure_requested():
        return None
    try:  # by name: an extension with no Python source, which imports nothing of ours
        seeded: Callable[[type[random.Random], str], random.Random] = importlib.import_module(
            "metropolis.engine._seeding"
        ).seeded
    except ImportError:  # a pure install, or a Python whose generator object has another layout
        return None
    for text in CHECKED:
        ours, theirs = seeded(random.Random, text), random.Random(text)
        if ours.getstate() != theirs.getstate() or ours.random() != theirs.random():
            return None
    return seeded


_seeded = _built_in_c()


def seeded_random(text: str) -> random.Random:
    """`random.Random(text)`: the same generator, built in C where the check above passed."""
    if _seeded is None:
        return random.Random(text)
    return _seeded(random.Random, text)


def in_c() -> bool:
    """Whether this process seeds in C (benchmark output and tests say which ran)."""
    return _seeded is not None
