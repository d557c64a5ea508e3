"""The Smallville workload generator: N residents living a day on the real map, and the LLM calls the
Generative Agents loop makes while they do.

Every step, in two phases so that no agent sees another's step-s decisions before its own:
1. perceive (positions as of the step, within R): a poignancy call for each new event of an agent in view (at
   most `att_bandwidth`), a reflection when the poignancy piles up, and, with an awake agent in focus, a
   `decide_to_talk` that sometimes starts a conversation. The whole conversation (rounds of two calls per side)
   runs inside the initiator's step, with the partner written into;
2. follow the plan: after a conversation a planning thought, a memo and a new schedule; at a new activity its
   decomposition (at waking, the daily plan and the hourly schedule); at a new sub-task the action and object
   choices; then walk one tile along a shortest path on the walkable map (V = 1), or stay.

After every step each resident's own plan says when its next planned call comes (`Workload.plan_next`): the end
of its conversation, else the first step with its sub-task over and its path walked, skipping a sleep that
begins then (going to bed calls nothing). Only the resident's state after the step goes in, never the recorded
future, so the calls nobody planned (perception, reactions, being talked to) are exactly what it misses. Its route
too (`Workload.route_until`, `route_moves`): the tiles of its planned path left, and the first step at which it may
start a new sub-task (its path walked, the sub-task over); a conversation only makes it stand longer on that path.
And the areas it keeps to after that (`area_until`, `area_radius`): until its activity ends its next sub-tasks go to
tiles of the same place, and until the next one ends to those of the next place, along paths it can work out now;
every tile of those paths and of its route lies within `area_radius` of its route's end (one area per activity
ahead, `AREAS` of them, each holding the ones before).

The knobs of the call model (`CallModel`) are tuned so that 25 agents make the paper's day: about 56,700
calls, about 5,000 in the busy hour (12-1 pm) and 800 in the quiet one (6-7 am). Seeded: the same config
gives the same workload, array for array.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

import metropolis.workloads.calls as C
from metropolis.registry import check_name
from metropolis.workloads.format import Workload
from metropolis.workloads.persona_day import STEPS_PER_HOUR, Activity, plan_day
from metropolis.workloads.scaling import METRICS, Layout
from metropolis.world.smallville import Town
from metropolis.world.spatial import Pos

SMALLVILLE_AGENTS = 25
AREAS = 4  # a route's areas: its activity's place, then with the places of the next three activities


@dataclass(frozen=True, slots=True)
class CallModel:
    """How often the occasions of `calls.py` arise (tuned to the paper's day; see the module docstring)."""

    subtask_steps: tuple[int, int] = (20, 60)  # a sub-task lasts 3 to 10 minutes
    home_slowdown: float = 1.3  # at home (morning routine, evening) sub-tasks last this much longer
    att_bandwidth: int = 8
    focus_prob: float = 1.0  # per step with an awake agent in view: it is in focus (GA's `_should_react`)
    talk_prob: float = 0.05  # a `decide_to_talk` that starts a conversation
    react_prob: float = 0.4  # in focus but talked too recently: `decide_to_react`
    rounds: tuple[int, int] = (2, 8)
    steps_per_round: int = 6  # a round of conversation takes a minute
    cooldown_steps: int = 720  # the same two agents talk again two hours later at the earliest
    reflect_threshold: int = 50
    poignancy: tuple[int, int] = (1, 6)


@dataclass(frozen=True, slots=True)
class DayConfig:
    agents: int = SMALLVILLE_AGENTS
    start_hour: float = 0.0
    hours: float = 24.0
    mode: str = "copies"
    perception_radius: float = 4.0
    metric: str = "euclidean"  # "walking": R counts steps around walls (a tighter, honest perception radius)
    seed: int = 0
    warmup_hours: float = 1.0  # simulated before a window that starts after midnight, not recorded
    model: CallModel = field(default_factory=CallModel)

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise ValueError(f"agents must be >= 1, got {self.agents}")
        check_name(self.metric, METRICS, "metric")
        if not (self.start_hour >= 0 and self.hours > 0 and self.start_hour + self.hours <= 24):
            raise ValueError(f"the window {self.start_hour}h + {self.hours}h must lie within one day")


@dataclass(slots=True, eq=False)
class _Resident:
    name: str
    plan: list[Activity]
    pos: Pos
    act: int = 0
    sub_end: int = 0
    path: deque[Pos] = field(default_factory=deque)
    event: int = 0
    chat_until: int | None = None
    chat_with: int | None = None
    busy_step: int | None = None
    acc: int = 0
    seen: dict[int, int] = field(default_factory=dict)
    planned: int | None = None  # the step of the next planned call, while the plan stands (None: to compute)
    # per next activity: (area until, reach from the route's end, the place: its tiles' index in `_Recorder.places`)
    area: list[tuple[int, int, int]] | None = None

    @property
    def activity(self) -> Activity:
        return self.plan[self.act]


class _Recorder:
    """Calls, observations, partners and actions of the recorded window, as growing lists."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls: list[tuple[int, int, int, int]] = []  # step, owner, speaker, function
        self.obs_counts: list[np.ndarray] = []
        self.obs_ids: list[np.ndarray] = []
        self.partners: list[tuple[int, int, int]] = []
        self.action_codes: dict[str, int] = {}
        self.actions: list[list[int]] = []
        self.positions: list[list[Pos]] = []
        self.plans: list[list[int]] = []
        self.routes: list[list[tuple[int, int, list[tuple[int, int, int]]]]] = []  # per step, per resident: _route
        self.places: dict[frozenset[Pos], int] = {}  # the tiles of an area (`_area`) -> its index

    def place(self, tiles: frozenset[Pos]) -> int:
        index = self.places.get(tiles)
        if index is None:
            index = self.places[tiles] = len(self.places)
        return index

    def action(self, text: str) -> int:
        code = self.action_codes.get(text)
        if code is None:
            code = self.action_codes[text] = len(self.action_codes)
        return code


def generate(town: Town, config: DayConfig | None = None) -> tuple[Workload, Layout]:
    """A workload of `config.agents` residents (persona i % 25 of town i // 25) over the configured window."""
    config = config or DayConfig()
    towns = -(-config.agents // SMALLVILLE_AGENTS)
    layout = Layout(town, towns, config.mode)
    rng = random.Random(config.seed)
    residents = _residents(town, layout, config, rng)
    start = round(config.start_hour * STEPS_PER_HOUR)
    end = start + round(config.hours * STEPS_PER_HOUR)
    first = max(0, start - round(config.warmup_hours * STEPS_PER_HOUR)) if start > 0 else 0
    for r in residents:
        while r.activity.end <= first:
            r.act += 1
        r.pos = layout.to_global(r.activity.tiles[0], r.activity.town)
        r.sub_end = first if first > 0 else r.activity.end
    rec = _Recorder(len(residents))
    sim = _DayRun(residents, layout, config, rng, rec)
    for s in range(first, end):
        sim.step(s, record=s >= start)
    rec.positions.append([r.pos for r in residents])
    return _workload(rec, residents, config, start, towns), layout


def _residents(town: Town, layout: Layout, config: DayConfig, rng: random.Random) -> list[_Resident]:
    tiles_of = functools.lru_cache(maxsize=None)(town.tiles_of)
    out = []
    for i in range(config.agents):
        persona = town.personas[i % len(town.personas)]
        home = i // len(town.personas)
        plan = plan_day(persona, town, home, layout.neighbours(home), rng, tiles_of)
        name = persona.name if home == 0 else f"{persona.name} #{home}"
        out.append(_Resident(name, plan, (0, 0)))
    return out


class _DayRun:
    def __init__(
        self, residents: list[_Resident], layout: Layout, config: DayConfig, rng: random.Random, rec: _Recorder
    ) -> None:
        self.rs = residents
        self.layout = layout
        self.cfg = config
        self.m = config.model
        self.rng = rng
        self.rec = rec
        self.cooldown: dict[tuple[int, int], int] = {}
        self.town_of = np.array([i // SMALLVILLE_AGENTS for i in range(len(residents))])
        self.calls: list[tuple[int, int, int, int]] = []
        self._last_positions: list[Pos] | None = None
        self._places: dict[tuple[tuple[Pos, ...], int, tuple[Pos, ...], int], frozenset[Pos]] = {}  # _place_paths
        self._from: dict[tuple[Pos, tuple[Pos, ...], int], frozenset[Pos]] = {}  # _paths_from
        self._seen: tuple[np.ndarray, np.ndarray, list[list[int]]] = (np.zeros(0, np.int32), np.zeros(0), [])
        # Euclidean is the candidate filter; walking distance (never shorter) then keeps the pairs really within R.
        self.walking = (
            layout.world(config.perception_radius, metric="walking").metric if config.metric == "walking" else None
        )

    def step(self, s: int, record: bool) -> None:
        self.calls = self.rec.calls if record else []
        neighbours = self._perceive(s, record)
        for i, r in enumerate(self.rs):
            self._attend(i, r, s, neighbours[i])
        for i, r in enumerate(self.rs):
            self._follow_plan(i, r, s)
        if record:
            self.rec.actions.append([self.rec.action(self._action(r)) for r in self.rs])
            self.rec.plans.append([self._planned(r, s) for r in self.rs])
            self.rec.routes.append([self._route(r, s) for r in self.rs])

    def _call(self, s: int, owner: int, speaker: int, functions: tuple[int, ...] | int) -> None:
        if isinstance(functions, int):
            self.calls.append((s, owner, speaker, functions))
        else:
            self.calls.extend((s, owner, speaker, f) for f in functions)

    # -- phase 1: perception and reaction ---------------------------------------------------------------------

    def _perceive(self, s: int, record: bool) -> list[list[int]]:
        positions = [r.pos for r in self.rs]
        if record:
            self.rec.positions.append(positions)
        if positions != self._last_positions:
            self._last_positions = positions
            self._seen = self._pairs(positions)
        dst, counts, lists = self._seen
        if record:
            self.rec.obs_counts.append(counts)
            self.rec.obs_ids.append(dst)
        return lists

    def _pairs(self, positions: list[Pos]) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
        """Who is within R of whom: (neighbour ids grouped by agent, counts per agent, the same as lists)."""
        n, radius = len(positions), self.cfg.perception_radius
        xy = np.array(positions, dtype=np.int64)
        if n <= 256:
            d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
            near = d2 <= radius * radius
            np.fill_diagonal(near, False)
            src, dst = np.nonzero(near)
        else:
            pairs = cKDTree(xy).query_pairs(radius, output_type="ndarray")
            src = np.concatenate([pairs[:, 0], pairs[:, 1]])
            dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
            order = np.lexsort((dst, src))
            src, dst = src[order], dst[order]
        if self.layout.mode == "copies" and len(src):
            keep = self.town_of[src] == self.town_of[dst]
            src, dst = src[keep], dst[keep]
        if self.walking is not None and len(src):
            dist = self.walking.distance
            keep = np.array([dist(positions[a], positions[b]) <= radius for a, b in zip(src, dst, strict=True)])
            src, dst = src[keep], dst[keep]
        lists: list[list[int]] = [[] for _ in range(n)]
        for a, b in zip(src.tolist(), dst.tolist(), strict=True):
            lists[a].append(b)
        return dst.astype(np.int32), np.bincount(src, minlength=n), lists

    def _attend(self, i: int, r: _Resident, s: int, seen: list[int]) -> None:
        if r.activity.asleep or not seen:  # asleep or talking (below), it starts no talk and is drawn into none
            return
        m, rng = self.m, self.rng
        awake = [j for j in seen if not self.rs[j].activity.asleep]
        for j in awake[: m.att_bandwidth]:
            event = self.rs[j].event
            if r.seen.get(j) != event:
                r.seen[j] = event
                self._call(s, i, i, C.POIGNANCY)
                self._remember(i, r, s)
        if r.chat_until is not None or r.busy_step == s or not awake or rng.random() >= m.focus_prob:
            return
        j = rng.choice(awake)
        pair = (min(i, j), max(i, j))
        if self.cooldown.get(pair, -1) > s:
            if rng.random() < m.react_prob:
                self._call(s, i, i, C.REACT)
            return
        self._call(s, i, i, C.DECIDE)
        other = self.rs[j]
        if rng.random() < m.talk_prob and other.chat_until is None and other.busy_step != s:
            self._converse(i, j, s)

    def _remember(self, i: int, r: _Resident, s: int) -> None:
        r.acc += self.rng.randint(*self.m.poignancy)
        if r.acc >= self.m.reflect_threshold:
            r.acc = 0
            self._call(s, i, i, C.REFLECT_FOCAL)
            for _ in range(3):
                self._call(s, i, i, (C.REFLECT_INSIGHT, C.POIGNANCY))

    def _converse(self, i: int, j: int, s: int) -> None:
        m = self.m
        rounds = self.rng.randint(*m.rounds)
        for _ in range(rounds):
            self._call(s, i, i, C.CHAT_TURN)
            self._call(s, i, j, C.CHAT_TURN)
        self._call(s, i, i, C.CHAT_END)
        until = s + rounds * m.steps_per_round
        for a, b in ((i, j), (j, i)):
            res = self.rs[a]
            res.chat_until, res.chat_with, res.busy_step, res.planned = until, b, s, None
            if self.calls is self.rec.calls:
                self.rec.partners.append((s, a, b))
        self.cooldown[(min(i, j), max(i, j))] = s + m.cooldown_steps

    # -- phase 2: the plan and the walk -----------------------------------------------------------------------

    def _follow_plan(self, i: int, r: _Resident, s: int) -> None:
        if r.chat_until is not None:
            if s < r.chat_until:
                return  # talking: stand still
            r.chat_until = r.chat_with = r.planned = None
            self._call(s, i, i, C.AFTER_CHAT)
            r.event += 1
        if s >= r.sub_end and not r.path:
            self._next_subtask(i, r, s)
        if r.path:
            r.pos = r.path.popleft()

    def _next_subtask(self, i: int, r: _Resident, s: int) -> None:
        r.planned = r.area = None
        if s >= r.activity.end:
            while r.activity.end <= s:
                r.act += 1
            act = r.activity
            if act.label == "waking up":
                awake_hours = max(1, round((r.plan[-1].start - act.start) / STEPS_PER_HOUR))
                self._call(s, i, i, C.WAKE)
                self._call(s, i, i, (C.HOURLY,) * awake_hours)
            if not act.asleep:
                self._call(s, i, i, C.DECOMP)
        act = r.activity
        tile = self.rng.choice(act.tiles)
        base, town = self.layout.locate(r.pos)
        r.path.extend(self.layout.path(base, town, tile, act.town))
        if act.asleep:
            r.sub_end = act.end
            return
        lo, hi = self.m.subtask_steps
        if act.place == r.plan[0].place:
            lo, hi = round(lo * self.m.home_slowdown), round(hi * self.m.home_slowdown)
        r.sub_end = s + self.rng.randint(lo, hi)
        r.event += 1
        self._call(s, i, i, C.SUBTASK)
        self._remember(i, r, s)

    # -- what the resident's plan says -----------------------------------------------------------------------

    def _planned(self, r: _Resident, s: int) -> int:
        """The step whose `_follow_plan` issues r's next planned call, as of the end of step s. It stands until
        the plan changes (a new sub-task, a conversation, its end): walking pops one tile per step, so
        s + len(path) stays put."""
        if r.planned is None:
            r.planned = self._plan_ahead(r, s)
        return r.planned

    def _plan_ahead(self, r: _Resident, s: int) -> int:
        if r.chat_until is not None:
            return r.chat_until  # AFTER_CHAT, in the first step that is no longer talking
        t = max(r.sub_end, s + len(r.path) + 1)  # the first step that starts with the sub-task over, path walked
        pos = r.path[-1] if r.path else r.pos
        k, plan = r.act, r.plan
        while True:
            while k < len(plan) and plan[k].end <= t:
                k += 1
            if k == len(plan) or not plan[k].asleep:
                return t  # WAKE / DECOMP / SUBTASK (or past the day: no call within it)
            sleep = plan[k]  # going to bed calls nothing: walk to the bed, and the next call is at waking
            base, town = self.layout.locate(pos)
            walk = self.layout.path(base, town, sleep.tiles[0], sleep.town)
            pos = walk[-1] if walk else pos
            t = max(sleep.end, t + len(walk) + 1)

    def _route(self, r: _Resident, s: int) -> tuple[int, int, list[tuple[int, int, int]]]:
        """What r knows after step s of where it goes: it walks its path (a tile a step at most; talking, it
        stands) and starts a new sub-task, the only thing that gives it a new path, at the first step t >= its
        sub-task's end with the path walked: t >= s + 1 + len(path). So it stands on its path's tiles, from its
        position at step s + 1, at every step up to that t."""
        if r.area is None:
            r.area = self._area(r, s)
        return max(r.sub_end, s + 1 + len(r.path)), len(r.path), r.area

    def _area(self, r: _Resident, s: int) -> list[tuple[int, int, int]]:
        """[(u_j, d_j, p_j)]: at every step up to u_j, r stands on a tile of place p_j, all within d_j of its
        route's end, for the next `AREAS` activities of its plan. Until the end of its j-th next activity (and of
        its route) it walks only its route and then paths from the route's end to tiles of those activities'
        places, or from a tile of one of them to a tile of it or of a later one (an activity it comes to late is
        skipped): those paths are all it may walk, wherever the dice send it, and it knows them all now."""
        end = r.path[-1] if r.path else r.pos
        plan, k = r.plan, r.act
        here = {r.pos, *r.path}
        out: list[tuple[int, int, int]] = []
        until = max(s + 1 + len(r.path), r.sub_end)
        for j in range(k, min(k + AREAS, len(plan))):
            here.update(self._paths_from(end, plan[j]))
            for a in range(k, j + 1):
                here.update(self._place_paths(plan[a], plan[j]))
            reach = max(((x - end[0]) ** 2 + (y - end[1]) ** 2) ** 0.5 for x, y in here)
            out.append((max(plan[j].end, until), int(np.ceil(reach)), self.rec.place(frozenset(here))))
        while len(out) < AREAS:
            out.append(out[-1])
        return out

    def _paths_from(self, tile: Pos, act: Activity) -> frozenset[Pos]:
        """Every tile of the paths from global `tile` to a tile of the activity's place."""
        key = (tile, act.tiles, act.town)
        tiles = self._from.get(key)
        if tiles is None:
            base, town = self.layout.locate(tile)
            tiles = frozenset(p for goal in act.tiles for p in self._path(base, town, goal, act.town))
            self._from[key] = tiles
        return tiles

    def _place_paths(self, a: Activity, b: Activity) -> frozenset[Pos]:
        """Every tile of a's and b's places and of the paths from a tile of a's to a tile of b's."""
        key = (a.tiles, a.town, b.tiles, b.town)
        tiles = self._places.get(key)
        if tiles is None:
            found = {self.layout.to_global(t, a.town) for t in a.tiles}
            found.update(self.layout.to_global(t, b.town) for t in b.tiles)
            for x in a.tiles:
                for y in b.tiles:
                    found.update(self._path(x, a.town, y, b.town))
            tiles = self._places[key] = frozenset(found)
        return tiles

    def _path(self, start: Pos, town: int, goal: Pos, goal_town: int) -> list[Pos]:
        """`Layout.path`, or nothing between towns no corridor joins (a resident never walks that: it would fail)."""
        try:
            return self.layout.path(start, town, goal, goal_town)
        except ValueError:
            return []

    def _action(self, r: _Resident) -> str:
        act = r.activity
        if r.chat_with is not None:
            return f"chatting with {self.rs[r.chat_with].name}"
        if r.path:
            return f"walking to {act.place}"
        return f"{act.label} @ {act.place}"


def _workload(rec: _Recorder, residents: list[_Resident], config: DayConfig, start: int, towns: int) -> Workload:
    n = len(residents)
    rows = np.array(rec.calls, dtype=np.int64).reshape(-1, 4)
    rows[:, 0] -= start
    order = np.argsort(rows[:, 0] * n + rows[:, 1], kind="stable")
    rows = rows[order]
    functions = rows[:, 3].astype(np.int16)
    prompt, output = C.trace_length_model().sample(functions, np.random.default_rng(config.seed))
    counts = np.concatenate(rec.obs_counts) if rec.obs_counts else np.zeros(0, dtype=np.int64)
    partners = np.array(rec.partners, dtype=np.int32).reshape(-1, 3)
    partners[:, 0] -= start
    routes = np.array([[(u, m) for u, m, _ in row] for row in rec.routes], dtype=np.int64).reshape(-1, n, 2)
    areas = np.array([[a for _, _, a in row] for row in rec.routes], dtype=np.int64).reshape(-1, n, AREAS, 3)
    places = [np.array(sorted(tiles), dtype=np.int32).reshape(-1, 2) for tiles in rec.places]
    steps = len(rec.actions)
    return Workload(
        names=[r.name for r in residents],
        positions=np.array(rec.positions, dtype=np.int32).reshape(-1, n, 2),
        actions=np.array(rec.actions, dtype=np.int32).reshape(-1, n),
        action_names=list(rec.action_codes),
        call_step=rows[:, 0].astype(np.int32),
        call_owner=rows[:, 1].astype(np.int32),
        call_speaker=rows[:, 2].astype(np.int32),
        call_function=functions,
        call_prompt=prompt,
        call_output=output,
        observed_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        observed_ids=np.concatenate(rec.obs_ids) if rec.obs_ids else np.zeros(0, dtype=np.int32),
        partner_rows=partners,
        plan_next=np.array(rec.plans, dtype=np.int64).reshape(-1, n).astype(np.int32) - start,
        route_until=np.minimum(routes[:, :, 0] - start, steps).astype(np.int32),
        route_moves=routes[:, :, 1].astype(np.int32),
        area_until=np.minimum(areas[:, :, :, 0] - start, steps).astype(np.int32),
        area_radius=areas[:, :, :, 1].astype(np.int32),
        area_place=areas[:, :, :, 2].astype(np.int32),
        place_ptr=np.concatenate([[0], np.cumsum([len(p) for p in places])]).astype(np.int64),
        place_tiles=np.concatenate(places) if places else np.zeros((0, 2), dtype=np.int32),
        perception_radius=config.perception_radius,
        seconds_per_step=10,
        start_seconds=start * 10.0,
        # A resident starts a conversation only with an agent it sees (`_attend`): within R at the step; and two
        # residents that talked wait `cooldown_steps` before they talk again (each knows whom it talked with).
        meta={
            "generator": "smallville-day",
            "mode": config.mode,
            "towns": towns,
            "seed": config.seed,
            "talks_in_sight": True,
            "talk_cooldown_steps": config.model.cooldown_steps,
        },
    )
