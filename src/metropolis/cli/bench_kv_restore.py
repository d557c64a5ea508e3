"""`metropolis bench kv-restore`: a real per-agent KV restore against recompute, in-process through
llama-cpp-python on SmolLM2 (what a host tier plus prefetch saves per call)."""

from __future__ import annotations

import typer
from rich.console import Console

from metropolis.cli.errors import one_line_errors

console = Console(width=160)


@one_line_errors
def kv_restore(tiny: bool = typer.Option(False, "--tiny", help="A few seconds' run, for tests.")) -> None:
    """Time a real KV restore against recompute (llama-cpp-python, SmolLM2-135M)."""
    from metropolis.bench.kv_restore import measure_state_restore  # imports llama_cpp: only when asked

    m = measure_state_restore(prefix_tokens=120 if tiny else 600, repeats=2 if tiny else 7)
    console.print(m.report())
