"""A run's folder: planned (and checked) before any work, created atomically under a unique name once the run
starts, with `meta.json` written at once and updated when the run ends.

Why: two runs started in the same second must never share a folder (the default name carries the second, so
`mkdir` without `exist_ok` picks the first free `-2`, `-3`, ... suffix: `mkdir` is atomic), `--out` on an
existing run must not mix two runs, and a run that fails before it starts must leave no empty folder behind.
`meta.json` is replaced atomically (write a temporary file, then `os.replace`), so a reader never sees half of it.

`meta.json` holds `status`: "running", then "completed", "failed" (with `error`), or "interrupted" (Ctrl-C) or
"terminated" (SIGTERM), with `agent_steps_done`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metropolis.cli.options import writable_folder

META = "meta.json"
# What marks a folder as an earlier run's (and so what `--force` may replace).
RUN_MARKERS = (META, "report.json", "trace")


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in RUN_MARKERS)


@dataclass(slots=True)
class RunFolder:
    """Where a run writes; `plan()` checks, `create()` makes it, `finish()` records how the run ended."""

    path: Path
    chosen: bool  # named by --out (else the default runs/<time>-<scheduler>, made unique)
    force: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    created: bool = False

    @classmethod
    def plan(cls, out: Path | None, scheduler: str, force: bool = False, root: Path = Path("runs")) -> RunFolder:
        """Check `--out` (or the default) before any work: one-line errors for a file, an earlier run, no access."""
        if out is None:
            writable_folder(root, "the runs folder")
            return cls(root / f"{time.strftime('%Y%m%d-%H%M%S')}-{scheduler}", chosen=False)
        writable_folder(out, "--out")
        if out.is_dir() and any(out.iterdir()):
            if not is_run_folder(out):
                raise FileExistsError(f"--out {out} is a folder that is not empty and not a run folder; choose another")
            if not force:
                raise FileExistsError(
                    f"--out {out} already holds a run; choose a new folder or pass --force to replace it"
                )
        return cls(out, chosen=True, force=force)

    def create(self, meta: dict[str, Any]) -> Path:
        """Make the folder (atomically, under a unique name) and write `meta.json` with status "running"."""
        if self.chosen:
            if self.force and is_run_folder(self.path):
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True, exist_ok=True)
            if any(self.path.iterdir()):  # another run took it since plan()
                raise FileExistsError(f"--out {self.path} was filled by another run meanwhile; choose another")
        else:
            self.path = _unique_mkdir(self.path)
        self.created = True
        self.meta = {"status": "running", "started": _now(), "pid": os.getpid(), "argv": sys.argv[1:], **meta}
        self._write_meta()
        return self.path

    def finish(self, status: str, **info: Any) -> None:
        """Record how the run ended in `meta.json`; nothing if the folder was never created."""
        if not self.created:
            return
        self.meta.update(status=status, ended=_now(), **info)
        self._write_meta()

    def _write_meta(self) -> None:
        tmp = self.path / f".{META}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        os.replace(tmp, self.path / META)


def _unique_mkdir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free run folder name next to {path}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
