"""Ray for one run: join the cluster at `--ray-address` (auto: the one `ray start` made on this machine;
ray://host:port: a remote one), or start a local one with this machine's cores and stop it at the end.

A local Ray's processes listen on the node's address (Ray 2.60 resolves a loopback `_node_ip_address` to it,
so it cannot be confined to loopback), and Ray's token authentication, on by default for local clusters since
Ray 2.59, keeps other machines from joining or calling them. Its GCS and raylet are started fate-shared with
this process (Ray sets them to die with their parent); after a kill -9 of this process, Ray's two agent
processes notice their raylet is gone and exit on their own, within about a minute and a half (measured).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import ray


@contextlib.contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[None]:
    """Use a Ray already initialised in this process as it is; otherwise join `address` or start a local Ray."""
    if ray.is_initialized():
        yield
        return
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **quiet)  # type: ignore[arg-type]
    else:
        ray.init(num_cpus=cpus or os.cpu_count() or 1, **quiet)  # type: ignore[arg-type]
    try:
        yield
    finally:
        ray.shutdown()
