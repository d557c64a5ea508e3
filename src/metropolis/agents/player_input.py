"""What a person in the town does, as data: the commands, the input queue a viewer feeds, and the pacing.

A person's actions must be reproducible like every other agent's: a run that replays them must be the same run
under every scheduling policy. So the player agent never reads input as it comes: at the start of each of its
steps it *takes* the commands meant for that step (`PlayerInput.take`), and that (step, commands) pair is
what the trace records (`player.jsonl`, see player_log.py). Replaying it is a script: the same commands at the
same steps, whatever the wall clock did.

The viewer's side (websocket, keyboard) calls `PlayerInput.push(command)` from any thread: the command is
taken by the player's next step that has not started yet. Nothing else is needed from the viewer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metropolis.registry import lookup


@dataclass(frozen=True, slots=True)
class Move:
    """One tile (or up to V) by (dx, dy) from where the player stands; an illegal move is ignored."""

    dx: int
    dy: int


@dataclass(frozen=True, slots=True)
class GoTo:
    """Walk towards tile (x, y), one step at a time, until there (or stuck); a later command replaces it."""

    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Say:
    """Say `text` to the agent called `to` (None: whoever is nearest in view); it answers through the LLM."""

    text: str
    to: str | None = None


Command = Move | GoTo | Say


def command_to_dict(command: Command) -> dict[str, Any]:
    """The JSON form of a command, as in a script line (without its step)."""
    if isinstance(command, Move):
        return {"move": [command.dx, command.dy]}
    if isinstance(command, GoTo):
        return {"goto": [command.x, command.y]}
    return {"say": command.text, "to": command.to}


def command_from_dict(data: Mapping[str, Any]) -> Command:
    """A command from its JSON form: {"move": [dx, dy]}, {"goto": [x, y]} or {"say": TEXT, "to": NAME}."""
    if "move" in data:
        dx, dy = data["move"]
        return Move(int(dx), int(dy))
    if "goto" in data:
        x, y = data["goto"]
        return GoTo(int(x), int(y))
    if "say" in data:
        to = data.get("to")
        return Say(str(data["say"]), None if to is None else str(to))
    raise ValueError(f"a player command needs one of move, goto or say; got keys {sorted(data)}")


class PlayerInput:
    """The player's commands: a script (step -> commands) and/or what `push` delivers live.

    `take(step)` fixes the commands of `step` the first time it is asked (scripted ones, then everything
    pushed since the previous take) and answers the same afterwards: a step run again (restarted with its
    cluster) sees the same input. `taken` is the record: step -> the commands that step took.
    """

    def __init__(self, script: Mapping[int, Iterable[Command]] | None = None) -> None:
        self.script = {step: tuple(commands) for step, commands in (script or {}).items()}
        self.taken: dict[int, tuple[Command, ...]] = {}
        self._pushed: list[Command] = []
        self._lock = threading.Lock()
        self._arrivals = 0  # pushes so far: what `InputPace` waits on

    def push(self, command: Command) -> None:
        """Hand the player a command now (thread-safe): its next step that has not started takes it."""
        if not isinstance(command, Move | GoTo | Say):
            raise TypeError(f"push takes a Move, GoTo or Say, got {type(command).__name__}")
        with self._lock:
            self._pushed.append(command)
            self._arrivals += 1

    @property
    def arrivals(self) -> int:
        return self._arrivals

    def take(self, step: int) -> tuple[Command, ...]:
        if step in self.taken:
            return self.taken[step]
        with self._lock:
            pushed, self._pushed = self._pushed, []
        commands = self.script.get(step, ()) + tuple(pushed)
        self.taken[step] = commands
        return commands


# -- pacing: when the player's step may start ------------------------------------------------------------------


class ScriptPace:
    """No waiting: the commands are known (a script, a replay); the player steps as fast as the run allows."""

    live = False

    async def wait(self, step: int, inputs: PlayerInput) -> None:
        return None


class ClockPace:
    """A step per `seconds_per_step` of wall time, counted from the player's first step (real time only)."""

    live = True

    def __init__(self, seconds_per_step: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds_per_step <= 0:
            raise ValueError(f"the player's seconds per step must be > 0, got {seconds_per_step}")
        self.seconds_per_step = seconds_per_step
        self.clock = clock
        self._t0: float | None = None

    async def wait(self, step: int, inputs: PlayerInput) -> None:
        if self._t0 is None:
            self._t0 = self.clock() - step * self.seconds_per_step
        delay = self._t0 + step * self.seconds_per_step - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)


class InputPace:
    """The player steps when a command arrives (real time only); `idle_steps` after `seconds_per_step` without
    one, so the town never freezes around a person who walked away from the keyboard (0: wait for input)."""

    live = True
    poll = 0.02  # seconds between looks at the queue: pushes may come from another thread

    def __init__(self, seconds_per_step: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds_per_step = seconds_per_step
        self.clock = clock
        self._seen = 0
        self._waited = -1  # the last step it waited for: a step run again (its cluster restarted) waits no more

    async def wait(self, step: int, inputs: PlayerInput) -> None:
        if step <= self._waited:
            return
        self._waited = step
        deadline = self.clock() + self.seconds_per_step if self.seconds_per_step > 0 else None
        while inputs.arrivals == self._seen and (deadline is None or self.clock() < deadline):
            await asyncio.sleep(self.poll)
        self._seen = inputs.arrivals


Pace = ScriptPace | ClockPace | InputPace
PACES: dict[str, Callable[[float], Pace]] = {
    "script": lambda seconds: ScriptPace(),
    "clock": ClockPace,
    "input": InputPace,
}


def make_pace(name: str, seconds_per_step: float = 1.0) -> Pace:
    """The pacing called `name` (script, clock or input); `seconds_per_step` is its wall time per step."""
    return lookup(PACES, name, "player pacing")(seconds_per_step)
