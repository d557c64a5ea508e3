"""The serving model: the GPUs of virtual time (continuous batching, KV capacity, replicas, presets)."""

from metropolis.llm.serving.backend import VirtualLLM
from metropolis.llm.serving.cluster import Cluster
from metropolis.llm.serving.config import ServingConfig
from metropolis.llm.serving.cost import CostModel
from metropolis.llm.serving.gate import MemoryGate, OpenGate
from metropolis.llm.serving.job import Job, JobStatus
from metropolis.llm.serving.presets import PRESETS, preset, single_request_latency
from metropolis.llm.serving.queues import QUEUES, make_queue
from metropolis.llm.serving.replica import Replica
from metropolis.llm.serving.responder import PlaceholderResponder, ReplayResponder, Reply, Responder
from metropolis.llm.serving.routing import ROUTERS, Router, make_router

__all__ = [
    "PRESETS",
    "QUEUES",
    "ROUTERS",
    "Cluster",
    "CostModel",
    "Job",
    "JobStatus",
    "MemoryGate",
    "OpenGate",
    "PlaceholderResponder",
    "ReplayResponder",
    "Replica",
    "Reply",
    "Responder",
    "Router",
    "ServingConfig",
    "VirtualLLM",
    "make_queue",
    "make_router",
    "preset",
    "single_request_latency",
]
