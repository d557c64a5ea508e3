"""Where agents stood as of one step: a spatial index per step, for the engine's neighbour query.

An agent at step s observes everyone within R of it as of step s. The table's index holds only *latest*
positions, so the query used to widen its radius by how far agents ahead may have walked since s (in a town of
25 that is the whole town), and to read and measure each agent it found: about 20 candidates for 0.16 agents
observed, on every agent-step. A position as of step s never changes once its agent has reached s, so an index
per step answers with a radius of R: the only candidates are agents that reached s and stood near.

Each step's index is built on its first query, from the store's states (every agent at or past s), and then kept
up to date by the commits that bring an agent to s; steps below GVT are dropped, as the store drops their states.
Runs whose agents never observe (replays) build none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from metropolis.engine.state import AgentState
from metropolis.scheduling.table import AgentView
from metropolis.world.metrics import Metric
from metropolis.world.spatial import Pos, SpatialIndex


class StepSnapshots:
    """`near(step, pos, radius)`: a superset of the agents that have reached `step` and stood within `radius` of
    `pos` at it (the metric's index, so the same superset the table's index would give for those positions)."""

    __slots__ = ("_indexes", "metric", "table")

    def __init__(self, metric: Metric, table: AgentView) -> None:
        self.metric = metric
        self.table = table
        self._indexes: dict[int, SpatialIndex] = {}

    def near(
        self,
        step: int,
        pos: Pos,
        radius: float,
        states: Sequence[Sequence[AgentState]],
        base: Sequence[int],
    ) -> Iterable[int]:
        """`states`, `base`: the store's lists (`StateStore.states_from(step)`), read when the step's index is
        built."""
        index = self._indexes.get(step)
        if index is None:
            index = self._indexes[step] = self.metric.make_index()
            for agent, reached in enumerate(self.table.step):
                if reached >= step:
                    index.add(agent, states[agent][step - base[agent]].pos)
        return index.near(pos, radius)

    def arrived(self, agent: int, step: int, state: AgentState) -> None:
        """`agent` committed `step - 1` and stands at `state.pos` as of `step`."""
        index = self._indexes.get(step)
        if index is not None:
            index.add(agent, state.pos)

    def collect(self, gvt: int) -> None:
        """Drop the indexes of steps below GVT: no step reads them again."""
        for step in [s for s in self._indexes if s < gvt]:
            del self._indexes[step]
