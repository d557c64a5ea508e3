"""Where the shared real data lives. It is never copied into the repository: it is read from `../shared`."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "METROPOLIS_SHARED"


def shared_data_dir(required: bool = True) -> Path | None:
    """The `shared/data` folder: $METROPOLIS_SHARED, else a `shared/data` beside the working directory or the
    source checkout (or one of their parents)."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        path = path / "data" if (path / "data").is_dir() else path
        if path.is_dir():
            return path
        if required:
            raise FileNotFoundError(f"${ENV_VAR} points to {env}, which is not a folder")
        return None
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "shared" / "data"
            if candidate.is_dir():
                return candidate
    if required:
        raise FileNotFoundError(
            f"cannot find the shared data folder (shared/data beside the checkout); set ${ENV_VAR} to it"
        )
    return None
