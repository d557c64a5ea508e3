"""`metropolis run --config run.toml` and `--dump-config`: a run's options as a TOML file, checked by pydantic.

`RunConfig` is the one statement of what a run option may hold (ranges, names, choices): the command line's
options and a config file's keys are both checked by it, and its errors are one line that names the key
(`--hours must be > 0, got 0` on the command line, `run.toml: hours must be > 0, got 0` in a file).
A file's keys are the long options' names with `_` for `-` (`start_hour`, `out_dir`, `genagent` as a table);
an option given on the command line wins over the file.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from metropolis.agents.player_input import PACES
from metropolis.agents.player_spawn import parse_at
from metropolis.cli.options import MAX_AGENTS, MAX_GPUS, MAX_HOURS, MAX_WORKERS
from metropolis.llm.serving.presets import PRESETS
from metropolis.registry import check_name
from metropolis.runtime.serving_memory import RUN_MEMORY_POLICIES
from metropolis.scheduling import scheduler_names
from metropolis.store.choice import check_store
from metropolis.world.metrics import metric_names


class RunConfig(BaseModel):
    """What `metropolis run` may be asked: every option with its range."""

    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)

    agents: int | None = Field(None, ge=1, le=MAX_AGENTS)
    hours: float = Field(1.0, gt=0, le=MAX_HOURS)
    start_hour: float = Field(8.0, ge=0, lt=24)
    scheduler: str = "metropolis"
    priority: bool = True
    members: Literal["concurrent", "serial"] = "concurrent"
    runtime: Literal["auto", "virtual", "asyncio", "ray"] = "auto"
    workers: int | None = Field(None, ge=1, le=MAX_WORKERS)
    ray_address: str = ""
    unit_timeout: float = Field(0.0, ge=0, le=86_400)
    llm: str = ""
    kind: str = "vllm"
    model: str = "default"
    preset: str = "l4-llama3-8b"
    gpus: int = Field(1, ge=1, le=MAX_GPUS)
    agent: Literal["auto", "walker", "generative"] = "auto"
    metric: str = "euclidean"
    seed: int = Field(0, ge=-(2**63), le=2**63 - 1)
    check: bool = False
    out_dir: Path | None = None
    replay: Path | None = None
    genagent: tuple[str, ...] = ()
    price: str = ""
    timeout: float = Field(120.0, gt=0, le=86_400)
    attempts: int = Field(6, ge=1, le=100)
    force: bool = False
    memory: str = ""
    fraction: float = Field(0.25, gt=0, le=1)
    store: str = ""  # "" or sqlite, redis, or redis://HOST:PORT/DB
    player: str = ""
    player_script: str = ""
    player_pace: str = "auto"
    player_seconds: float = Field(1.0, gt=0, le=86_400)
    player_at: str = ""

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, name: str) -> str:
        if name not in scheduler_names():
            raise ValueError(f"unknown scheduler {name!r}; choose one of: {', '.join(scheduler_names())}")
        return name

    @field_validator("preset")
    @classmethod
    def _preset(cls, name: str) -> str:
        check_name(name, PRESETS, "serving preset")
        return name

    @field_validator("metric")
    @classmethod
    def _metric(cls, name: str) -> str:
        check_name(name, metric_names(), "metric")
        return name

    @field_validator("memory")
    @classmethod
    def _memory(cls, name: str) -> str:
        if name:
            check_name(name, RUN_MEMORY_POLICIES, "--memory policy")
        return name

    @field_validator("store")
    @classmethod
    def _store(cls, spec: str) -> str:
        return check_store(spec)

    @field_validator("player_pace")
    @classmethod
    def _pace(cls, name: str) -> str:
        return check_name(name, ("auto", *PACES), "player pacing")

    @field_validator("player_at")
    @classmethod
    def _at(cls, text: str) -> str:
        if text:
            parse_at(text)
        return text

    @field_validator("genagent", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """A file may give the generative-agent settings as a table; the command line gives KEY=VALUE pairs."""
        if isinstance(value, dict):
            return tuple(f"{k}={v}" for k, v in value.items())
        return value


def checked(values: dict[str, Any], where: str = "--") -> RunConfig:
    """`values` as a `RunConfig`, or a one-line ValueError naming the first bad key (`where` prefixes it)."""
    try:
        return RunConfig.model_validate(values)
    except ValidationError as error:
        raise ValueError(validation_line(error, where)) from None


def validation_line(error: ValidationError, where: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"][:1]) or "?"
    name = f"{where}{key.replace('_', '-')}" if where == "--" else f"{where}{key}"
    kind, ctx, got = first["type"], first.get("ctx", {}), first.get("input")
    wording = {
        "greater_than": f"must be > {_g(ctx.get('gt'))}",
        "greater_than_equal": f"must be >= {_g(ctx.get('ge'))}",
        "less_than": f"must be < {_g(ctx.get('lt'))}",
        "less_than_equal": f"must be <= {_g(ctx.get('le'))}",
        "finite_number": "must be a finite number",
        "extra_forbidden": f"is not a run option; the options are {', '.join(RunConfig.model_fields)}",
    }.get(kind)
    if kind == "value_error":
        return f"{'' if where == '--' else where}{str(first['msg']).removeprefix('Value error, ')}"
    if wording is None:
        wording = str(first["msg"]).lower()
    return f"{name} {wording}, got {got!r}" if kind != "extra_forbidden" else f"{name} {wording}"


def _g(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def load(path: Path) -> dict[str, Any]:
    """The keys of a config file, checked (a bad key or value is one line naming the file and the key)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"--config {path}: not TOML: {error}") from None
    checked(raw, f"{path}: ")
    return raw


def dump(config: RunConfig, path: Path) -> Path:
    """Write `config` as TOML (every key, so the file documents what a run can be asked)."""
    lines = [f"# metropolis run --config {path.name}: every option of `metropolis run`, one key each", ""]
    pairs: list[str] = []
    for key, value in config.model_dump().items():
        if key == "genagent":
            pairs = list(value)
            continue
        if value is None:
            lines.append(f"# {key} = (automatic)")
            continue
        lines.append(f"{key} = {_toml(value)}")
    if pairs:
        lines += ["", "[genagent]"]
        lines += [f"{k} = {_toml(_scalar(v))}" for k, _, v in (p.partition("=") for p in pairs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not (isinstance(value, float) and not math.isfinite(value)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _scalar(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def given(ctx: Any, key: str) -> bool:
    """Whether option `key` was set on the command line (not left at its default), so it wins over a file."""
    from typer._click.core import ParameterSource  # typer's own copy of click

    names = {"preset": "preset_name", "priority": "no_priority"}
    source = ctx.get_parameter_source(names.get(key, key))
    return source is not None and source != ParameterSource.DEFAULT
