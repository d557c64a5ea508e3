"""The engine core: agents, versioned state and the simulation a runtime drives. It knows no clocks."""

from metropolis.engine.agent import Agent, InteractionError, Observation, StepContext
from metropolis.engine.records import CallRecord, Listener, StepRecord
from metropolis.engine.simulation import Simulation
from metropolis.engine.state import AgentState, StateStore

__all__ = [
    "Agent",
    "AgentState",
    "CallRecord",
    "InteractionError",
    "Listener",
    "Observation",
    "Simulation",
    "StateStore",
    "StepContext",
    "StepRecord",
]
