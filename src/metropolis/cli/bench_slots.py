"""`metropolis bench slots`: llama-server's own slot save/restore timed against recompute (SmolLM2, one thread)."""

from __future__ import annotations

import typer
from rich.console import Console

from metropolis.bench.slots import measure_slots
from metropolis.cli.errors import one_line_errors
from metropolis.llm.engines.llama_server import ENV_VAR, find_server

console = Console(width=160)

SERVER_HELP = f"The llama-server binary (default: ${ENV_VAR}, else the one scripts/build-llama-server.sh built)."


@one_line_errors
def slots(
    server: str | None = typer.Option(None, "--server", help=SERVER_HELP),
    tiny: bool = typer.Option(False, "--tiny", help="A few seconds' run, for tests."),
) -> None:
    """Time /slots save/restore on a real llama-server against recomputing the agent's prefix."""
    m = measure_slots(find_server(server), prefix_words=100 if tiny else 450, repeats=2 if tiny else 5)
    console.print(
        f"llama-server /slots (SmolLM2-135M, 1 thread, median of {m.repeats}): agent prefix + suffix "
        f"= {m.prefix_tokens} tokens\n"
        f"  recompute prefix + suffix        {m.recompute_ms:8.1f} ms\n"
        f"  restore slot (server timing)     {m.restore_ms:8.1f} ms\n"
        f"  call after restore               {m.restored_call_ms:8.1f} ms   ({m.restored_prompt_n} tokens evaluated; "
        f"{m.recompute_ms / max(m.restore_ms + m.restored_call_ms, 1e-9):.1f}x faster with the restore)\n"
        f"  call with the KV still resident  {m.resident_call_ms:8.1f} ms\n"
        f"  save slot (server timing)        {m.save_ms:8.1f} ms"
    )
