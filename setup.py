"""Builds the compiled modules (mypyc) at `pip install -e .`; the project's metadata lives in pyproject.toml.

With METROPOLIS_COMPILE=1, the modules listed in `src/metropolis/compiled.py` are compiled to C extensions beside
their sources (mypyc; `C_MODULES` are written in C), and the hash of each source is recorded in
`src/metropolis/compiled.json`, which `import metropolis` checks (a stale build refuses to run). install.sh sets
it; without it (a plain `pip install -e .`), without a C compiler, Python's headers or mypyc, or with
METROPOLIS_PURE=1, the install is pure Python: one line says so, and everything runs, only slower in virtual time.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "src" / "metropolis"
_compiled = runpy.run_path(str(PACKAGE / "compiled.py"))  # the list, without importing the package
MODULES: tuple[str, ...] = _compiled["MODULES"]
C_MODULES: tuple[str, ...] = _compiled["C_MODULES"]
GROUP = "metropolis_compiled"  # mypyc's shared library: src/metropolis_compiled__mypyc.*.so
BUILDING = bool({"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"} & set(sys.argv[1:]))


def why_pure() -> str | None:
    """None when the modules can be compiled here, else the reason in a few words."""
    if os.environ.get("METROPOLIS_COMPILE", "") in ("", "0"):
        return "METROPOLIS_COMPILE=1 compiles them (install.sh sets it)"
    if os.environ.get("METROPOLIS_PURE", "") not in ("", "0"):
        return "METROPOLIS_PURE is set"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is missing (it ships with mypy)"
    return None


def clear() -> None:
    """Remove every extension and manifest an earlier build left in the source tree: one that is not rebuilt (a
    module dropped from the set, or a pure install) would shadow its source."""
    for old in [*PACKAGE.rglob("*.so"), *PACKAGE.parent.glob(f"{GROUP}__mypyc.*.so"), PACKAGE / "compiled.json"]:
        old.unlink(missing_ok=True)


def pure(reason: str) -> None:
    print(f"metropolis: installing pure Python, no compiled modules: {reason} (virtual time takes 1.5-1.6x the CPU)")
    clear()


class BuildCompiled(build_ext):
    """Compiles when the build runs rather than when setup.py is read (pip reads it three times per install),
    records the compiled sources' hashes beside them, and falls back to pure Python when the build fails."""

    def finalize_options(self) -> None:
        if BUILDING:  # pip's metadata queries finalize this command too: compile only for a build
            self.distribution.ext_modules = self._extensions()
        super().finalize_options()

    def _extensions(self) -> list[Extension]:
        reason = why_pure()
        if reason:
            pure(reason)
            return []
        try:
            from mypyc.build import mypycify

            # pip builds in an environment without the project's dependencies: their imports are Any there, so
            # a `type: ignore` the full environment needs can look unused (mypy alone checks that, in CI).
            sources = [f"src/metropolis/{m}.py" for m in MODULES]
            in_c = [Extension(f"metropolis.{m.replace('/', '.')}", [f"src/metropolis/{m}.c"]) for m in C_MODULES]
            return [*mypycify(["--no-warn-unused-ignores", *sources], group_name=GROUP), *in_c]
        except Exception as error:  # mypyc refuses the code (or the system exits on a type error): pure Python
            pure(f"mypyc failed ({type(error).__name__}: {error})")
            return []
        except SystemExit:  # mypy's type errors, printed above
            pure("mypyc found type errors (printed above)")
            return []

    def run(self) -> None:
        if not self.extensions:
            return
        clear()
        built = [(m, PACKAGE / f"{m}.py") for m in MODULES] + [(m, PACKAGE / f"{m}.c") for m in C_MODULES]
        manifest = {m: hashlib.sha256(source.read_bytes()).hexdigest() for m, source in built}
        try:
            super().run()
        except Exception as error:  # a C compiler that fails: the project still installs, as pure Python
            self.extensions = []
            pure(f"the C build failed ({type(error).__name__}: {error})")
            return
        text = json.dumps(manifest, indent=0, sort_keys=True) + "\n"
        for target in {PACKAGE, Path(self.build_lib) / "metropolis"}:
            target.mkdir(parents=True, exist_ok=True)
            (target / "compiled.json").write_text(text)


# A placeholder, replaced in BuildCompiled.finalize_options: it makes setuptools run build_ext.
setup(ext_modules=[Extension(f"{GROUP}__mypyc", sources=[])], cmdclass={"build_ext": BuildCompiled})
