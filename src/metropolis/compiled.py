"""The modules compiled with mypyc, and the guard that keeps a stale build from running.

`METROPOLIS_COMPILE=1 pip install -e .` (setup.py; install.sh sets it) compiles `MODULES` to C extensions beside
their sources: the virtual-time hot path (kernel, scheduling, engine, serving model, driver, world) takes 1.5-1.6x
less CPU, every figure the same to the last digit (docs/architecture.md). Python imports an extension before a
`.py` of the same name, so an
editable install has one danger: a developer edits `kernel.py` and the old `kernel.*.so` keeps running. The build
records each compiled source's hash (`compiled.json`); `check()`, run when `metropolis` is imported, compares the
sources beside the extensions with it and refuses with one line if any differs. Mixing is not an option: compiled
modules call each other in C, past Python's import, so one module cannot be swapped back to its source alone.

`METROPOLIS_PURE=1` runs the sources and ignores any extension (profiling, debugging, or a quick edit without a
rebuild); a checkout with no extensions (`PYTHONPATH=src`, a worktree) is pure Python without being told.
A class that code outside the compiled set subclasses (agents, policies, test doubles) carries
`@mypyc_attr(allow_interpreted_subclasses=True)`; an exception class that subclasses a builtin one other than
`Exception` carries `native_class=False` (mypyc compiles neither otherwise). A compiled dataclass keeps the
`__init__` that `dataclasses` generates, a Python function: the records made per agent-step and per LLM call write
theirs out (`init=False`), which mypyc compiles to C stores, `object.__setattr__` on a frozen one included
(test_records checks that each takes its fields, in order).

Pickling and copying (Ray ships agents, worlds and records to its workers; speculation and checkpoints copy agents'
private state) differ compiled in three ways, each met here or at the class: a compiled frozen dataclass is rebuilt
through its constructor (`picklable`, called by the module that defines it; test_compiled checks every one); an
interpreted subclass's own `__dict__` is carried beside the native attributes (`state_of`, `Agent.__getstate__`);
and a class whose `__init__` takes arguments carries `allow_interpreted_subclasses=True`, with which mypyc's
`__new__` leaves `__init__` to the caller, as Python's does (without it, unpickling calls `__init__()` bare and
fails; `serializable=True`, meant for this, leaves an instance made from interpreted code uninitialised in mypyc
2.4.1). A class-level constant that interpreted subclasses override is a `ClassVar` (compiled code would read the
base's slot otherwise: `Driver.runtime_name`).
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

MODULES: tuple[str, ...] = (
    "kernel",
    "scheduling/base",
    "scheduling/dispatch",
    "scheduling/metropolis",
    "scheduling/rules",
    "scheduling/table",
    "scheduling/unit",
    "engine/agent",
    "engine/members",
    "engine/records",
    "engine/seeding",
    "engine/simulation",
    "engine/snapshots",
    "engine/state",
    "llm/accounting",
    "llm/types",
    "llm/serving/agentmem",
    "llm/serving/backend",
    "llm/serving/calibrate",
    "llm/serving/cluster",
    "llm/serving/config",
    "llm/serving/cost",
    "llm/serving/gate",
    "llm/serving/job",
    "llm/serving/presets",
    "llm/serving/queues",
    "llm/serving/replica",
    "llm/serving/responder",
    "llm/serving/routing",
    "runtime/driver",
    "runtime/meter",
    "runtime/virtual",
    "world/fields",
    "world/generated",
    "world/graph",
    "world/metrics",
    "world/paths",
    "world/smallville",
    "world/spatial",
    "world/tilemap",
    "world/walking",
    "world/world",
    "workloads/scaling",
    "agents/randomwalk",
    "agents/replay",
)
"""The compiled set, as paths under `src/metropolis` without `.py`: what the two end-to-end rows of
`metropolis bench scheduler` spend their time in."""

C_MODULES: tuple[str, ...] = ("engine/_seeding",)
"""Extensions written in C, built with the compiled set from their `.c` source: a step's generator, seeded as
`random.Random` seeds it (engine/seeding.py says why, and checks it when it loads)."""

PACKAGE = Path(__file__).resolve().parent
MANIFEST = PACKAGE / "compiled.json"
PURE_ENV = "METROPOLIS_PURE"
EXTENSION_ENDINGS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extensions(package: Path = PACKAGE) -> dict[str, Path]:
    """Every extension module in the package, by its path without suffix (`"kernel"`, `"engine/agent"`)."""
    found: dict[str, Path] = {}
    for folder, _, files in os.walk(package):
        for name in files:
            if name.endswith(EXTENSION_ENDINGS):
                ext = Path(folder, name)
                found[str(ext.parent.relative_to(package) / name.partition(".")[0])] = ext
    return found


def stale(package: Path = PACKAGE) -> list[str]:
    """Extension modules whose source is not the one compiled (edited, or built without a manifest)."""
    built = extensions(package)
    if not built:
        return []
    manifest = package / MANIFEST.name
    recorded: dict[str, str] = json.loads(manifest.read_text()) if manifest.exists() else {}
    sources = {name: source_of(package, name) for name in built}
    return sorted(
        name for name, source in sources.items() if not source.exists() or recorded.get(name) != source_hash(source)
    )


def source_of(package: Path, name: str) -> Path:
    """The file an extension is built from: its C source where it has one (`C_MODULES`), else its module."""
    c = package / f"{name}.c"
    return c if c.exists() else package / f"{name}.py"


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def in_use() -> bool:
    """Whether the compiled modules run in this process (the kernel stands for all: they are built together)."""
    import metropolis.kernel

    return not (metropolis.kernel.__file__ or "").endswith(".py")


def describe() -> str:
    """One phrase for benchmark output: which build ran."""
    if in_use():
        built = extensions()
        in_c = [name for name in C_MODULES if name in built]
        return f"compiled ({len(built) - len(in_c)} modules, mypyc" + (f"; {len(in_c)} in C)" if in_c else ")")
    return f"pure Python ({PURE_ENV}=1)" if pure_requested() and extensions() else "pure Python"


class SourceFirst:
    """A meta path finder that loads `metropolis.*` modules from their `.py`, ignoring extensions beside them."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not name.startswith("metropolis.") or path is None:
            return None
        leaf = name.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, f"{leaf}.py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(name, source)
        return None  # a package, or not ours: the ordinary finders


def picklable(*classes: type) -> None:
    """Let these frozen dataclasses be pickled and deep-copied when compiled: mypyc pickles and copies a native
    class by setting its fields one by one, which a frozen dataclass refuses, so each is reduced to its constructor
    instead (Ray ships records to its workers; an agent's private state, copied by speculation and checkpoints, may
    hold them). Each module that defines one calls this below its classes; pure Python needs nothing."""
    for cls in classes:
        if is_compiled(cls):
            copyreg.pickle(cls, _reduce)


def is_compiled(cls: type) -> bool:
    """Whether mypyc compiled this class (it lists its native attributes), whatever the rest of the build."""
    return "__mypyc_attrs__" in vars(cls)


def _reduce(obj: Any) -> tuple[Any, ...]:
    return _rebuild, (type(obj), {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init})


def _rebuild(cls: type, fields: dict[str, Any]) -> Any:
    return cls(**fields)


_UNSET = object()


def state_of(obj: object) -> dict[str, Any]:
    """What pickling an object must carry: compiled, mypyc's native attributes (`__mypyc_attrs__`, those set)
    and an interpreted subclass's own `__dict__`, which mypyc's default `__getstate__` drops (a test agent's
    `fails_at` would reach a Ray worker unset); pure, the `__dict__`, as pickle's default."""
    state: dict[str, Any] = {}
    for name in getattr(type(obj), "__mypyc_attrs__", ()):
        value = getattr(obj, name, _UNSET)
        if value is not _UNSET and name != "__dict__":
            state[name] = value
    state.update(getattr(obj, "__dict__", {}))
    return state


def set_state(obj: object, state: dict[str, Any]) -> None:
    """Restore what `state_of` returned; `setattr`, since a native attribute has no `__dict__` entry."""
    for name, value in state.items():
        setattr(obj, name, value)


def check() -> None:
    """Run at `import metropolis`: honour METROPOLIS_PURE, refuse a stale build (module docstring)."""
    if pure_requested():
        if not any(isinstance(f, SourceFirst) for f in sys.meta_path):
            sys.meta_path.insert(0, SourceFirst())
        return
    old = stale()
    if old:
        message = (
            f"metropolis: the compiled modules are older than their sources ({', '.join(old[:3])}"
            f"{', ...' if len(old) > 3 else ''}): rerun `METROPOLIS_COMPILE=1 pip install -e .`, "
            f"or set {PURE_ENV}=1 to run the sources"
        )
        if Path(sys.argv[0]).name == "metropolis":  # the CLI: one line and exit 2, no traceback
            sys.stderr.write(message + "\n")
            raise SystemExit(2)
        raise ImportError(message)
