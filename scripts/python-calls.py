"""Where compiled code still calls through Python: for each function mypyc compiled, the source lines whose C goes
through the generic object protocol (an attribute looked up by name, a call through vectorcall, a `Sequence`
indexed as an object), with the name looked up where there is one.

mypyc compiles a call natively only when it knows the callee: a method of a compiled class, a primitive
(`math.sqrt` of a float, `len` of a list, `dict.get` called in place). Anything else (a bound method kept in a
local, a builtin like `next` or `all` of a list, `zip(strict=True)`, a module function) is a lookup and a call
through Python, 50-100 ns each. On the hot path these add up: round 10 found the kernel's `next()` on its
sequence counter, a commit's `zip(strict=True)` and a bound `advance`, and `math.sqrt` of an int, worth 16 % of
the virtual-time rows together (docs/architecture.md).

Reads the C of the last `METROPOLIS_COMPILE=1 pip install -e .` (build/__native_metropolis_compiled.c). Usage:

    python scripts/python-calls.py [NAME ...]    # functions whose C name contains NAME (all when none)

Error paths show up too (`raise ValueError(...)` looks `ValueError` up): read the line before acting on it.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "build" / "__native_metropolis_compiled.c"
FUNCTION = re.compile(r"^\S[^\n]*?\b(CPyDef_\w+)\([^\n]*\) \{\n(.*?)^\}", re.S | re.M)
GENERIC = re.compile(
    r"\b(CPyObject_GetAttr|PyObject_VectorcallMethod|PyObject_Vectorcall|PyObject_Call|PyObject_GetItem|"
    r"PyObject_SetItem|PyObject_GetIter|CPyObject_Size|PySequence_Contains|PyNumber_\w+)\("
)
NAME = re.compile(r"/\* '([^']*)' \*/")
WHERE = re.compile(r'CPy_AddTraceback\("([^"]*)", "[^"]*", (\d+)')


def generic_lines(body: str) -> dict[str, list[str]]:
    """`file:line` -> the generic operations its C makes (with the name looked up, where the C says)."""
    found: dict[str, list[str]] = defaultdict(list)
    lines = body.split("\n")
    for i, line in enumerate(lines):
        op = GENERIC.search(line)
        if op is None:
            continue
        names = NAME.findall(" ".join(lines[max(0, i - 4) : i + 1]))
        where = next((m for m in (WHERE.search(after) for after in lines[i : i + 8]) if m), None)
        key = f"{where.group(1)}:{where.group(2)}" if where else "?"
        found[key].append(op.group(1) + (f"({names[-1]!r})" if names else ""))
    return found


def _line_order(where: str) -> tuple[str, int]:
    file, _, line = where.rpartition(":")
    return file, int(line) if line.isdigit() else 0


def main(wanted: list[str]) -> int:
    if not SOURCE.exists():
        print(f"no compiled C at {SOURCE}: build with METROPOLIS_COMPILE=1 .venv/bin/pip install -e .")
        return 2
    for match in FUNCTION.finditer(SOURCE.read_text()):
        name, body = match.group(1), match.group(2)
        if wanted and not any(w in name for w in wanted):
            continue
        found = generic_lines(body)
        if found:
            print(name)
            for where, ops in sorted(found.items(), key=lambda item: _line_order(item[0])):
                print(f"    {where}: {', '.join(ops)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
