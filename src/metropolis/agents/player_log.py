"""The player's inputs on disk: a script to play, and the record of a run's inputs, in one JSON-lines format.

One line per command: {"step": 12, "move": [1, 0]}, {"step": 30, "goto": [70, 45]} or
{"step": 31, "say": "Hello!", "to": "Isabella Rodriguez"} ("to" null or absent: whoever is nearest in view).
A run's trace folder gets `player.jsonl` in this format, written as the player's steps commit (`PlayerLog`):
passing it back as `--player-script` (or `read_script`) replays the person exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from metropolis.agents.player import PlayerAgent
from metropolis.agents.player_input import Command, command_from_dict, command_to_dict
from metropolis.engine.records import CallRecord, StepRecord

PLAYER_FILE = "player.jsonl"


def script_lines(script: Mapping[int, tuple[Command, ...]]) -> list[str]:
    return [json.dumps({"step": step, **command_to_dict(c)}) for step in sorted(script) for c in script[step]]


def parse_script(text: str, where: str = "player script") -> dict[int, tuple[Command, ...]]:
    """step -> commands, in the order of the lines; a bad line is a ValueError naming it."""
    script: dict[int, list[Command]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data: dict[str, Any] = json.loads(line)
            step = int(data.pop("step"))
            command = command_from_dict(data)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{where} line {number}: {error} (want e.g. {{"step": 3, "move": [1, 0]}})') from None
        if step < 0:
            raise ValueError(f"{where} line {number}: step must be >= 0, got {step}")
        script.setdefault(step, []).append(command)
    return {step: tuple(commands) for step, commands in script.items()}


def read_script(path: Path | str) -> dict[int, tuple[Command, ...]]:
    """A script file, or a run folder / trace folder holding `player.jsonl` (its recorded inputs)."""
    path = Path(path)
    for candidate in (path / "trace" / PLAYER_FILE, path / PLAYER_FILE):
        if path.is_dir() and candidate.is_file():
            path = candidate
            break
    if not path.is_file():
        raise FileNotFoundError(f"no player script at {path}")
    return parse_script(path.read_text(encoding="utf-8"), str(path))


class PlayerLog:
    """A listener that records the commands each committed player step took; to `path` as JSON lines (flushed
    per step, so a run that dies keeps its inputs), and in `script` for the caller.

    `resume`: the run continues an earlier one whose log is at `path`: what it recorded is kept (and handed to
    the player, so the steps it runs again take the same commands, pushed ones included)."""

    def __init__(self, player: PlayerAgent, path: Path | str | None = None, resume: bool = False) -> None:
        self.player = player
        self.script: dict[int, tuple[Command, ...]] = {}
        self._file: IO[str] | None = None
        if path is None:
            return
        path = Path(path)
        if resume and path.is_file():
            self.script = read_script(path)
            player.inputs.script = {**player.inputs.script, **self.script}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 -- held for the run, closed in close()
        if self.script:
            self._file.write("\n".join(script_lines(self.script)) + "\n")
            self._file.flush()

    def on_step(self, record: StepRecord) -> None:
        if record.agent != self.player.unique_id:
            return
        commands = self.player.inputs.taken.get(record.step, ())
        if not commands or record.step in self.script:
            return
        self.script[record.step] = commands
        if self._file is not None:
            self._file.write("\n".join(script_lines({record.step: commands})) + "\n")
            self._file.flush()

    def on_call(self, record: CallRecord) -> None:
        return None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
