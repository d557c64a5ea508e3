"""Ray for one run: join the cluster at `--ray-address` (auto: the one `ray start` made on this machine;
ray://host:port: a remote one), or start a local one with this machine's cores and stop it at the end. A local
Ray binds loopback; its processes are started fate-shared with this one (Ray sets them to die with their parent).
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
        ray.init(num_cpus=cpus or os.cpu_count() or 1, _node_ip_address="127.0.0.1", **quiet)  # type: ignore[arg-type]
    try:
        yield
    finally:
        ray.shutdown()
