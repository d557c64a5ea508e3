"""The cyclic garbage collector during a virtual run: fewer collections, none of the world built before it.

A virtual run allocates millions of short-lived objects (events, records, tuples) and few reference cycles.
With Python's default first-generation threshold (700 allocations) the collector runs thousands of times a
simulated hour and, every tenth and hundredth time, walks older generations that hold the whole town, the
agents and the serving model. Freezing what exists when the run starts (`gc.freeze`: those objects are left out
of every collection until the run ends) and collecting the young generation every 50,000 allocations took 13 %
less CPU on a 3-hour run of 25 walkers (5 alternating repeats each). Collection order never changes a result:
the run is deterministic either way.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG = 50_000  # allocations between collections of the youngest generation (Python's default: 700)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Within: the objects that exist now are frozen out of collection, and collections come less often."""
    if not gc.isenabled():  # the caller manages the collector itself
        yield
        return
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
