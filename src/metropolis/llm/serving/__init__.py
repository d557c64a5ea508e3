"""The serving model: the GPUs of virtual time (continuous batching, KV capacity, replicas, presets)."""

from metropolis.llm.serving.backend import RequestStat, VirtualLLM
from metropolis.llm.serving.cluster import Cluster
from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.cost import CostModel
from metropolis.llm.serving.engine import Replica
from metropolis.llm.serving.job import Job
from metropolis.llm.serving.presets import PRESETS, preset, single_request_latency
from metropolis.llm.serving.responder import PlaceholderResponder, ReplayResponder, Reply, Responder
from metropolis.llm.serving.routing import ROUTERS, Router, make_router

__all__ = [
    "PRESETS",
    "ROUTERS",
    "Cluster",
    "CostModel",
    "Job",
    "PlaceholderResponder",
    "ReplayResponder",
    "Replica",
    "Reply",
    "RequestStat",
    "Responder",
    "Router",
    "ServingConfig",
    "VirtualLLM",
    "make_router",
    "preset",
    "single_request_latency",
]
