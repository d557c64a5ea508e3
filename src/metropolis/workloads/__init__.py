"""Workloads: what agents do step by step (positions, LLM calls, whom they observe and talk to), generated for
Smallville or taken from a recorded trace, and replayed under any scheduler."""

from metropolis.workloads.format import StepDeps, Workload
from metropolis.workloads.generator import CallModel, DayConfig, generate
from metropolis.workloads.scaling import Layout, TownsMetric

__all__ = ["CallModel", "DayConfig", "Layout", "StepDeps", "TownsMetric", "Workload", "generate"]
