"""The Ray runtime: the controller (this process) decides and commits; async Ray actors run the units.

Ray is an optional extra (`pip install metropolis-sim[distributed]`); importing this package needs it.
"""

from metropolis.runtime.ray.controller import RayRuntime
from metropolis.runtime.ray.pool import WorkerPool
from metropolis.runtime.ray.session import ray_session

__all__ = ["RayRuntime", "WorkerPool", "ray_session"]
