"""A workload: what every agent does at every step of a window, as compact columns.

It carries exactly what a recorded run carries, so replaying it and scheduling it by its dependencies (the
oracle) work the same for generated and for recorded days:
- `positions[s, i]`: where agent i stands at step s (row `steps` is where it ends), `actions[s, i]` the action
  it commits at step s;
- the LLM calls of each agent-step, in the order the step issues them. `owner` is the agent whose step issues
  the call, `speaker` the agent it is made for (a partner speaking inside the initiator's conversation);
- whom each agent-step observed (the agents within R, as of that step) and whom it wrote into (`partners`);
- optionally, `plan_next[s, i]`: the step whose execution will issue agent i's next *planned* call, as its own
  plan says after step s (`PLAN_UNKNOWN` where it has none; the column is `None` for sources without plans).
  Unplanned calls (perception, reactions, a conversation someone else starts) are not in it: that is what the
  spatial bound of the invocation distance is for.
- optionally, the route each agent knew after step s (`route_until[s, i]`, `route_moves[s, i]`): it walks its
  planned path of `route_moves` tiles (no faster than a tile a step, maybe slower) and starts nothing new before
  `route_until`, so it stands on that path's tiles (from where it stands at step s + 1) at every step up to
  `route_until`. Its own state only, as `plan_next`; `route_of` reads the tiles off the recorded positions, which
  walk every planned tile (a planned path is never abandoned). With it, where it keeps to after that
  (`area_until[s, i, j]`, `area_radius[s, i, j]`): within `area_radius` of its route's last tile at every step up
  to `area_until`, for the end of its activity and of the next ones (its plan says where they are). Where the
  window ends before the path does, `route_of` has fewer tiles than `route_moves` + 1 and the areas' centre is
  not among them: they cannot be read. Each area is also a place (`area_place[s, i, j]`, an index into the
  ragged `place_ptr` / `place_tiles`): the tiles it may stand on, the paths of its plan, not a disc around them.

`to_trace` / `from_trace` convert to and from `metropolis.trace.Trace`, so a workload can be written, read and
summarised as a trace; `save` / `load` keep the columns as one compressed `.npz` (faster for big towns).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metropolis.workloads.calls import FUNCTION_NAMES

Call = tuple[int, str, int, int]  # speaker, function, prompt tokens, output tokens
PLAN_UNKNOWN = -1  # in `plan_next`: this agent-step knows no plan (an int32 column has no None)


def walk_tiles(path: Sequence[tuple[int, int]], start: int, moves: int) -> tuple[tuple[int, int], ...]:
    """The tile at `path[start]` and the next `moves` tiles the recorded `path` steps onto after it: a planned
    path of `moves` tiles, walked at a tile a step or slower, read off the positions that walked it."""
    tiles = [path[start]]
    for t in range(start + 1, len(path)):
        if len(tiles) > moves:
            break
        if path[t] != tiles[-1]:
            tiles.append(path[t])
    return tuple(tiles)


@dataclass(frozen=True, slots=True)
class StepDeps:
    """One agent-step's dependencies, the shape `DependencyGraph.from_steps` reads."""

    agent: int
    step: int
    observed: tuple[int, ...]
    partners: tuple[int, ...]


@dataclass(slots=True)
class Workload:
    names: list[str]
    positions: np.ndarray  # (steps + 1, n, 2) int32
    actions: np.ndarray  # (steps, n) int32 codes into action_names
    action_names: list[str]
    call_step: np.ndarray  # (calls,) int32; calls sorted by (step, owner), issue order kept
    call_owner: np.ndarray
    call_speaker: np.ndarray
    call_function: np.ndarray  # codes into function_names
    call_prompt: np.ndarray
    call_output: np.ndarray
    observed_ptr: np.ndarray  # (steps * n + 1,) int64: agent-step s * n + i observed observed_ids[ptr[k]:ptr[k+1]]
    observed_ids: np.ndarray
    partner_rows: np.ndarray  # (k, 3) int32: step, agent, partner (both directions present)
    perception_radius: float
    seconds_per_step: int = 10
    start_seconds: float = 0.0
    function_names: list[str] = field(default_factory=lambda: list(FUNCTION_NAMES))
    meta: dict[str, object] = field(default_factory=dict)
    plan_next: np.ndarray | None = None  # (steps, n) int32, or None: no plans recorded
    route_until: np.ndarray | None = None  # (steps, n) int32, or None: no routes recorded
    route_moves: np.ndarray | None = None  # (steps, n) int32, with route_until
    area_until: np.ndarray | None = None  # (steps, n, areas) int32, with route_until (or None)
    area_radius: np.ndarray | None = None  # (steps, n, areas) int32, with area_until
    area_place: np.ndarray | None = None  # (steps, n, areas) int32: each area's tiles (`place`), or None
    place_ptr: np.ndarray | None = None  # (places + 1,) int64: place k's tiles are place_tiles[ptr[k]:ptr[k + 1]]
    place_tiles: np.ndarray | None = None  # (tiles, 2) int32

    def __post_init__(self) -> None:
        steps, n = self.actions.shape
        if self.positions.shape != (steps + 1, n, 2):
            raise ValueError(f"positions should have shape {(steps + 1, n, 2)}, got {self.positions.shape}")
        if len(self.names) != n:
            raise ValueError(f"{len(self.names)} agent names for {n} agents")
        if self.observed_ptr.shape != (steps * n + 1,):
            raise ValueError(f"observed_ptr should have {steps * n + 1} entries, got {len(self.observed_ptr)}")
        order = self.call_step.astype(np.int64) * n + self.call_owner
        if len(order) and (np.diff(order) < 0).any():
            raise ValueError("calls must be sorted by (step, owner)")
        if self.plan_next is not None:
            self._check_plans(self.plan_next)
        if (self.route_until is None) != (self.route_moves is None):
            raise ValueError("route_until and route_moves come together: give both or neither")
        if (self.area_until is None) != (self.area_radius is None):
            raise ValueError("area_until and area_radius come together: give both or neither")
        if not (self.area_place is None) == (self.place_ptr is None) == (self.place_tiles is None):
            raise ValueError("area_place, place_ptr and place_tiles come together: give all three or none")
        if self.area_place is not None and self.area_until is None:
            raise ValueError("area_place needs area_until and area_radius")
        for name in ("route_until", "route_moves", "area_until", "area_radius", "area_place"):
            value = getattr(self, name)
            if value is not None and value.shape[:2] != self.actions.shape:
                raise ValueError(f"{name} should have shape {self.actions.shape}, got {value.shape}")

    def _check_plans(self, plans: np.ndarray) -> None:
        if plans.shape != self.actions.shape:
            raise ValueError(f"plan_next should have shape {self.actions.shape}, got {plans.shape}")
        stale = (plans != PLAN_UNKNOWN) & (plans <= np.arange(self.steps)[:, None])
        if stale.any():
            s, i = np.argwhere(stale)[0]
            raise ValueError(
                f"plan_next[{s}, {i}] = {plans[s, i]}: a plan made at step {s} must name a later step "
                f"(or {PLAN_UNKNOWN} for none)"
            )

    @property
    def agents(self) -> int:
        return self.actions.shape[1]

    @property
    def steps(self) -> int:
        return self.actions.shape[0]

    @property
    def calls(self) -> int:
        return len(self.call_step)

    # -- per agent-step views ---------------------------------------------------------------------------------

    def calls_by_agent_step(self) -> dict[tuple[int, int], tuple[Call, ...]]:
        """(agent, step) -> its calls in issue order; agent-steps without calls are absent.

        The calls are sorted by (step, owner) (`__post_init__` checks it), so each agent-step's calls are one run
        of the columns: cut where the key changes, instead of a dict look-up per call (a replay builds this
        inside the timed span of `bench scheduler`'s busy hour)."""
        if not len(self.call_step):
            return {}
        names = self.function_names
        calls = list(
            zip(
                self.call_speaker.tolist(),
                [names[f] for f in self.call_function.tolist()],
                self.call_prompt.tolist(),
                self.call_output.tolist(),
                strict=True,
            )
        )
        key = self.call_step.astype(np.int64) * self.agents + self.call_owner
        cuts = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), len(calls)]
        firsts = cuts[:-1]
        return {
            (o, s): tuple(calls[a:b])
            for o, s, a, b in zip(
                self.call_owner[firsts].tolist(), self.call_step[firsts].tolist(), firsts, cuts[1:], strict=True
            )
        }

    def partners_by_agent_step(self) -> dict[tuple[int, int], tuple[int, ...]]:
        out: dict[tuple[int, int], set[int]] = {}
        for s, a, p in self.partner_rows.tolist():
            out.setdefault((a, s), set()).add(p)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    def observed(self, agent: int, step: int) -> tuple[int, ...]:
        k = step * self.agents + agent
        return tuple(self.observed_ids[self.observed_ptr[k] : self.observed_ptr[k + 1]].tolist())

    def step_deps(self) -> Iterator[StepDeps]:
        """Every agent-step with whom it observed and wrote into, for `DependencyGraph.from_steps`."""
        partners = self.partners_by_agent_step()
        ptr, ids = self.observed_ptr.tolist(), self.observed_ids.tolist()
        n = self.agents
        for s in range(self.steps):
            for i in range(n):
                k = s * n + i
                yield StepDeps(i, s, tuple(ids[ptr[k] : ptr[k + 1]]), partners.get((i, s), ()))

    def plan_at(self, agent: int, step: int) -> int | None:
        """The step of the agent's next planned call as it knows it after `step`; None: no plan known."""
        if self.plan_next is None:
            return None
        planned = int(self.plan_next[step, agent])
        return None if planned == PLAN_UNKNOWN else planned

    def route_of(self, agent: int, step: int) -> tuple[int, tuple[tuple[int, int], ...]] | None:
        """What the agent knew after `step` of where it goes: (u, tiles), it stands on `tiles` (in walking order,
        from its position at step + 1) at every step up to u. None: no route known."""
        if self.route_until is None or self.route_moves is None:
            return None
        path = [self.position(agent, t) for t in range(step + 1, self.steps + 1)]
        return int(self.route_until[step, agent]), walk_tiles(path, 0, int(self.route_moves[step, agent]))

    def places(self) -> list[tuple[tuple[int, int], ...]]:
        """The tiles of each place an area names (`area_place`); empty without places."""
        if self.place_ptr is None or self.place_tiles is None:
            return []
        tiles = [(x, y) for x, y in self.place_tiles.tolist()]
        bounds = self.place_ptr.tolist()
        return [tuple(tiles[a:b]) for a, b in itertools.pairwise(bounds)]

    def position(self, agent: int, step: int) -> tuple[int, int]:
        x, y = self.positions[step, agent]
        return int(x), int(y)

    # -- statistics -------------------------------------------------------------------------------------------

    def calls_per_hour(self) -> dict[int, int]:
        """Calls per hour of day (0..23, the window's own hours only)."""
        seconds = self.start_seconds + self.call_step.astype(float) * self.seconds_per_step
        hours = (seconds // 3600).astype(int) % 24
        values, counts = np.unique(hours, return_counts=True)
        return dict(zip(values.tolist(), counts.tolist(), strict=True))

    def summary(self) -> dict[str, float]:
        return {
            "agents": self.agents,
            "steps": self.steps,
            "calls": self.calls,
            "mean_prompt_tokens": float(self.call_prompt.mean()) if self.calls else 0.0,
            "mean_output_tokens": float(self.call_output.mean()) if self.calls else 0.0,
            "conversation_steps": len({(s, a) for s, a, _ in self.partner_rows.tolist()}),
        }

    # -- files ------------------------------------------------------------------------------------------------

    ARRAYS = (
        "positions",
        "actions",
        "call_step",
        "call_owner",
        "call_speaker",
        "call_function",
        "call_prompt",
        "call_output",
        "observed_ptr",
        "observed_ids",
        "partner_rows",
    )
    OPTIONAL_ARRAYS = (
        "plan_next",
        "route_until",
        "route_moves",
        "area_until",
        "area_radius",
        "area_place",
        "place_ptr",
        "place_tiles",
    )  # absent from files written before they existed

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        header = {
            "names": self.names,
            "action_names": self.action_names,
            "function_names": self.function_names,
            "perception_radius": self.perception_radius,
            "seconds_per_step": self.seconds_per_step,
            "start_seconds": self.start_seconds,
            "meta": self.meta,
        }
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        arrays.update({name: value for name in self.OPTIONAL_ARRAYS if (value := getattr(self, name)) is not None})
        np.savez_compressed(path, header=np.array(json.dumps(header)), **arrays)
        return path

    @classmethod
    def load(cls, path: Path | str) -> Workload:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {name: data[name] for name in cls.ARRAYS}
                arrays.update({name: data[name] for name in cls.OPTIONAL_ARRAYS if name in data})
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"{path}: not a workload file ({error})") from None
        return cls(**header, **arrays)
