"""Ray for one run: join the cluster at `--ray-address` (auto: the one `ray start` made on this machine;
ray://host:port: a remote one), or start a local one with this machine's cores and stop it at the end.

A local Ray listens on loopback only, as every server the project starts: Ray's own switch for that is the one
it uses for local clusters on macOS and Windows (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, which makes the node's
address 127.0.0.1 and its GCS, raylet and workers bind it), set here for the start of a local Ray only; a Ray
that others join (`ray start`, `--ray-address`) keeps its own. Ray's token authentication, on by default since
Ray 2.59, guards it as well. Its GCS and raylet are started fate-shared with
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
        with _loopback_only() if _on_loopback(address) else contextlib.nullcontext():
            ray.init(address=address, **quiet)  # type: ignore[arg-type]
    else:
        with _loopback_only():
            ray.init(num_cpus=cpus or os.cpu_count() or 1, **quiet)  # type: ignore[arg-type]
    try:
        yield
    finally:
        ray.shutdown()


def _on_loopback(address: str) -> bool:
    """Whether `address` (host:port, or ray://host:port) is a Ray on this machine's loopback, such as the one
    this module starts: a driver joining it must take 127.0.0.1 as its own node address too."""
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Ray's node address is loopback while a local Ray starts (read by `ray.init`, and by the processes it
    starts, from their environment)."""
    constants = ray._private.ray_constants
    saved = constants.ENABLE_RAY_CLUSTER, os.environ.get(constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
    constants.ENABLE_RAY_CLUSTER = False
    os.environ[constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved[0]
        if saved[1] is None:
            os.environ.pop(constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved[1]
