"""Agent state, versioned by step.

An agent at step s reads every other agent as of step s, even those already ahead, so the store keeps each agent's
states from the global virtual time (GVT, the slowest agent's step) up to its own step. Anything older can never be
read again and is dropped, which keeps memory bounded on long runs. Each agent's step is the run's agent table's;
the store keeps only the states.
"""

from __future__ import annotations

from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from metropolis.compiled import picklable
from metropolis.scheduling.table import AgentView
from metropolis.world.spatial import Pos


@dataclass(frozen=True, slots=True, init=False)
class AgentState:
    """What other agents can observe of an agent at one step."""

    pos: Pos
    action: str
    events: tuple[str, ...]

    def __init__(self, pos: Pos, action: str = "", events: tuple[str, ...] = ()) -> None:
        # Written out: the dataclass's own `__init__` is a Python function even compiled, where these are C stores
        object.__setattr__(self, "pos", pos)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "events", events)


@mypyc_attr(allow_interpreted_subclasses=True)  # the Ray worker's ShippedStates
class StateStore:
    """Per-agent lists of states; `_base[i]` is the step of `_states[i][0]`."""

    __slots__ = ("_base", "_states", "keep_all", "table")

    def __init__(self, initial: list[AgentState], table: AgentView, keep_all: bool = False) -> None:
        self._states: list[list[AgentState]] = [[s] for s in initial]
        self._base: list[int] = [0] * len(initial)
        self.table = table
        self.keep_all = keep_all

    def __len__(self) -> int:
        return len(self._states)

    def latest(self, agent: int) -> AgentState:
        return self._states[agent][-1]

    def at(self, agent: int, step: int) -> AgentState:
        """The agent's state as of `step`; a read outside the kept window is a scheduler bug."""
        i = step - self._base[agent]
        if i < 0 or step > self.table.step[agent]:
            raise RuntimeError(
                f"agent {agent} state at step {step} is not available (kept: {self._base[agent]}.."
                f"{self.table.step[agent]}); a scheduler let a read run ahead of causality"
            )
        return self._states[agent][i]

    def states_from(self, step: int) -> tuple[list[list[AgentState]], list[int]]:
        """The raw lists, for the engine's neighbour query: `lists[a][step - base[a]]` is agent a's state as of
        `step` for every agent at or past `step` (GVT <= step, so nothing it reads was dropped). Checked once
        here instead of once per neighbour, on the engine's hottest path."""
        if step < self.table.gvt():
            raise RuntimeError(f"states as of step {step} are behind GVT {self.table.gvt()} and were dropped")
        return self._states, self._base

    def commit(self, agent: int, step: int, state: AgentState) -> None:
        """Record the state the agent reached by executing `step` (its state for step + 1)."""
        if step != self.table.step[agent]:
            raise RuntimeError(f"agent {agent} committed step {step} while at step {self.table.step[agent]}")
        self._states[agent].append(state)

    def collect(self, gvt: int) -> None:
        """Drop every state below the global virtual time."""
        if self.keep_all:
            return
        for agent, states in enumerate(self._states):
            drop = min(gvt - self._base[agent], len(states) - 1)  # the latest state always stays
            if drop > 0:
                del states[:drop]
                self._base[agent] += drop

    def history(self, agent: int) -> list[AgentState]:
        """Every kept state of the agent, oldest first (all of them when `keep_all`)."""
        return list(self._states[agent])

    def kept(self) -> int:
        return sum(len(s) for s in self._states)


picklable(AgentState)  # pickled and copied through its constructor, compiled (metropolis/compiled.py)
