"""The run's headline in words: how much town time, on what, took how long, and what it is faster than.

"time (virtual) 1103.01 s" for one simulated hour means "this hour takes 18 min 23 s on one modelled L4"; the
headline says that, and compares it with the serial and lockstep schedules of the same run, which in virtual time
cost a second or two to compute alongside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def duration_words(seconds: float) -> str:
    """1103.01 -> '18 min 23 s'; 4860 -> '1 h 21 min'; 4.2 -> '4.2 s'."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{m} min {s} s" if s else f"{m} min"


def hardware_words(preset_note: str, preset_name: str, gpus: int) -> str:
    """'Llama-3-8B BF16 on 1 x L4, ...' with 2 replicas -> '2 L4'; without such a note, the preset's name."""
    found = re.search(r" on (\d+) x ([^,]+?)(?:,|$)", preset_note)
    if not found:
        return f"{gpus} x {preset_name}"
    return f"{gpus * int(found.group(1))} {found.group(2).strip()}"


@dataclass(frozen=True, slots=True)
class Headline:
    town_seconds: float
    took_seconds: float
    virtual: bool
    hardware: str  # '1 L4' (virtual time) or the LLM's endpoint (real time)
    alongside: dict[str, float]  # other schedulers' times for the same run: serial, lockstep

    def text(self) -> str:
        where = f"modelled on {self.hardware}" if self.virtual else f"on {self.hardware}"
        line = f"{duration_words(self.town_seconds)} of town time, {where}, took {duration_words(self.took_seconds)}"
        serial = self.alongside.get("serial")
        if serial and self.took_seconds > 0:
            line += f"; serial would take {duration_words(serial)}: {serial / self.took_seconds:.1f}x"
        lockstep = self.alongside.get("lockstep")
        if lockstep and self.took_seconds > 0:
            line += f" (lockstep {duration_words(lockstep)}: {lockstep / self.took_seconds:.1f}x)"
        return line
