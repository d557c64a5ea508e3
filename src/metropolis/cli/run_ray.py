"""`metropolis run --runtime ray`: the run's controller here, its units on Ray workers (runtime/ray/)."""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from metropolis.cli.run_setup import RunOptions
from metropolis.engine import Simulation
from metropolis.llm.accounting import Accounting, Prices
from metropolis.llm.endpoints import EndpointConfig
from metropolis.llm.journal import Journal
from metropolis.runtime.driver import Progress
from metropolis.runtime.report import RunReport
from metropolis.store import SqliteStore

if TYPE_CHECKING:
    from metropolis.runtime.ray.worker import JournalOpener

NO_RAY = "--runtime ray needs Ray: pip install 'metropolis-sim[distributed]' (bash install.sh installs it)"


def ray_run(
    sim: Simulation,
    endpoint: EndpointConfig | None,
    opts: RunOptions,
    progress: Progress | None,
    journal: Journal,
    prices: Prices | None = None,
) -> tuple[RunReport, Accounting]:
    """Join the Ray cluster at `--ray-address` (or start a local one, stopped at the end), start `--workers`
    actors (one per CPU of the cluster when None), run, and stop them."""
    try:
        import ray

        from metropolis.runtime.ray import RayRuntime, WorkerPool, ray_session
    except ImportError:
        raise ValueError(NO_RAY) from None
    with ray_session(opts.ray_address or None):
        cpus = float(ray.cluster_resources().get("CPU", 1))
        count = opts.workers or max(1, int(cpus))
        pool = WorkerPool(sim, count, endpoint, min(1.0, cpus / count), journal_opener(journal))
        try:
            pool.wait_ready()
            runtime = RayRuntime(sim, pool, journal, unit_timeout=opts.unit_timeout or None)
            runtime.accounting.prices = prices
            report = asyncio.run(runtime.run(progress))
        finally:
            pool.close()
    return report, runtime.accounting


def journal_opener(journal: Journal) -> JournalOpener | None:
    """How a worker opens the run's store to read a resumed run's answers: the SQLite file by its path (workers
    on this machine, or on a shared file system), or the Redis store under the controller's epoch. None for a
    fresh run: there is nothing to read."""
    if journal.empty:
        return None
    store = journal.store
    if isinstance(store, SqliteStore):
        return functools.partial(SqliteStore, store.path)
    url, key, epoch = (getattr(store, name, None) for name in ("url", "key", "epoch"))
    if isinstance(url, str) and isinstance(key, str) and isinstance(epoch, int):  # the Redis store
        from metropolis.store.redis import RedisStore

        return functools.partial(RedisStore, url, key, True, epoch)
    raise ValueError(f"a resumed run on Ray cannot read journaled answers from a {type(store).__name__}")
