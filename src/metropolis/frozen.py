"""Fast constructors for the frozen records made on every agent-step and LLM call.

A frozen dataclass's generated `__init__` sets each field with `object.__setattr__(self, name, value)`, which
looks the name up on the class again for every field: a 13-field `CallRecord` costs about 2.6 us, more than the
work its caller does with it. `builder(cls)` returns a function taking the same arguments as `cls(...)` (same
names, order and defaults) that makes the same instance, with the slots' own setters looked up once: about 1.1 us.
Compiled by mypyc (metropolis/compiled.py) the dataclass's `__init__` is still that Python function, and the fields
are C getset descriptors: the builder calls their setters the same way (AgentState 1.29 -> 0.71 us).
Only for frozen slots dataclasses without `__post_init__` (nothing to check or derive), so the instance is exactly
what `cls(...)` would have made: same fields, same equality, hash and immutability.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from metropolis.compiled import is_compiled

T = TypeVar("T")
_MISSING = object()


def builder(cls: type[T]) -> Callable[..., T]:
    """`build(*args, **kwargs)`, equal to `cls(*args, **kwargs)` and about twice as fast (module docstring)."""
    compiled = is_compiled(cls)  # by mypyc (metropolis/compiled.py): getset descriptors, not slots
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or not (compiled or "__slots__" in vars(cls)):
        raise TypeError(f"{cls.__name__} is not a frozen slots dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__, which a builder would skip")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # checked to be a dataclass above
    if any(not f.init for f in fields):
        raise TypeError(f"{cls.__name__} has fields outside __init__")
    new = _blank_maker(cls) if compiled else object.__new__
    compiled_ctor = new is None  # a compiled class whose `__new__` runs `__init__`: only its constructor makes one
    ns: dict[str, Any] = {"_new": new, "_cls": cls, "_MISSING": _MISSING}
    params_src, body = [], []
    for f in fields:
        if not compiled_ctor:
            ns[f"_set_{f.name}"] = vars(cls)[f.name].__set__
        if f.default is not dataclasses.MISSING:
            ns[f"_default_{f.name}"] = f.default
            params_src.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            params_src.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _factory_{f.name}()\n")
        else:
            params_src.append(f.name)
        body.append(f"    _set_{f.name}(_obj, {f.name})\n")
    if compiled_ctor:  # the same signature and errors, then the constructor
        body = [b for b in body if not b.lstrip().startswith("_set_")]
        body.append(f"    return _cls({', '.join(f'{f.name}={f.name}' for f in fields)})\n")
        source = f"def build({', '.join(params_src)}):\n{''.join(body)}"
    else:
        source = f"def build({', '.join(params_src)}):\n    _obj = _new(_cls)\n{''.join(body)}    return _obj\n"
    exec(source, ns)  # as `dataclasses` itself makes `__init__`: one straight-line function per class
    build: Callable[..., T] = ns["build"]
    build.__qualname__ = build.__name__ = cls.__name__  # errors read "CallRecord() got an unexpected ..."
    return build


def _blank_maker(cls: Any) -> Callable[[Any], Any] | None:
    """`cls.__new__` for a mypyc-compiled dataclass when it makes an instance without running `__init__` (the
    dataclass's `__init__` is Python there, setting each field through `object.__setattr__`: the fields' own C
    setters, called directly, make the same instance in about half the time); None when it runs `__init__`."""
    try:
        cls.__new__(cls)
    except TypeError:
        return None
    return cls.__new__
