"""`metropolis bench store`: what a commit costs in the Redis store against the embedded SQLite one, side by side."""

from __future__ import annotations

import typer
from rich.table import Table

from metropolis.bench.store_cost import run_store_cost
from metropolis.cli.console import table_console
from metropolis.cli.errors import one_line_errors
from metropolis.cli.options import integer
from metropolis.store.choice import check_reachable, check_store

console = table_console()


@one_line_errors
def store(
    url: str = typer.Option("", "--url", help="A Redis to measure (redis://HOST:PORT/DB); default: a local one."),
    puts: int = typer.Option(500, "--puts", help="Journal puts per round and store."),
    checkpoints: int = typer.Option(20, "--checkpoints", help="Checkpoints saved per round and store."),
    agents: int = typer.Option(25, "--agents", help="Agent states in each checkpoint."),
    state_bytes: int = typer.Option(2048, "--state-bytes", help="Bytes of each agent's pickled state."),
    rounds: int = typer.Option(5, "--rounds", help="Alternating rounds (SQLite, Redis, Redis, SQLite, ...)."),
) -> None:
    """Per-commit cost of the Redis store vs the embedded SQLite store (medians, measured in one run)."""
    integer(puts, "--puts", 1, 1_000_000)
    integer(checkpoints, "--checkpoints", 1, 100_000)
    integer(agents, "--agents", 1, 100_000)
    integer(state_bytes, "--state-bytes", 0, 1 << 24)
    integer(rounds, "--rounds", 1, 1000)
    spec = url or "redis"
    if not spec.startswith("redis"):
        raise ValueError(f"--url {url}: not a Redis URL redis://HOST:PORT/DB")
    check_reachable(check_store(spec))
    with console.status("timing commits in SQLite and Redis, alternating ..."):
        rows = run_store_cost(url or None, puts, checkpoints, agents, state_bytes, rounds)
    where = url or "a local redis-server (loopback, AOF everysec)"
    table = Table(title=f"Per-commit cost: Redis ({where}) vs embedded SQLite (WAL)")
    for col in ("commit", "SQLite us", "Redis us", "Redis / SQLite"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(row.operation, f"{row.sqlite_us:.1f}", f"{row.redis_us:.1f}", f"{row.ratio:.2f}x")
    console.print(table)
    console.print(f"checkpoints of {agents} agent states of {state_bytes:,} bytes; medians of {rounds} rounds")
