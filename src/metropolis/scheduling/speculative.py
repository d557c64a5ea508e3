"""`speculative`: the metropolis rules, plus units dispatched ahead of blockers that are guessed to stay away.

A unit blocked by agents behind it waits, under `metropolis`, until none of them can still come within R + V of
it by the time they reach its step. Most such waits are false: the blocker walks elsewhere. This policy runs the
unit anyway when a guess says its blockers will not come: each blocker may still make `moves` steps before it
reaches the unit's step (less the steps it promised to stand still, `ctx.stay`), and the guess is that it walks at
most `guess` of them towards the unit (none, with `still`, once it has stood still that many steps). The engine
keeps what such a unit does to itself (engine/speculation.py).

Validation is the conservative rule, checked late: a blocker stops blocking when the metropolis rule releases it
(it walked out of the blocking radius, or reached the unit's step). Reaching the step within R + V of a member is
a conflict: the serial order would have seen it coupled with the unit, or observed by it. The dispatcher then
puts the members back to waiting (`abort`) before it scans the arriving agent, so the two couple as in `serial`;
the members stay held (not dispatchable) until the engine has unwound the undone run (`release`). A unit whose
members' blockers are all gone is `settled`: the engine commits it then, through the ordinary path.

Held results run ahead (chains). The engine offers each held result's next step (`offer_chain`): the agents whose
held results reach the same step form clusters there by their held positions, whichever units those results come
from, and agents waiting at that step in the table that such a cluster couples with join it (a cascade: they run
on the held results). A chained unit is adopted member by member as the steps below it commit: an arriving agent
coupled with nobody outside the unit joins it from its table row; once all have, it is an ordinary speculative
unit. Undoing a step undoes every step chained on it, transitively (`chained_above`). Measured on the Smallville
day (25 agents, 8 GPUs), the held commit is what limits speculation: with every guess right, speculation without
chains of clusters reaches 77 % of the oracle, with them 89 %; what the real guesses give is in the README.

Routes (`routes`, scheduling/speculative_routes.py): agents that publish where they will be (the tiles of a planned
path and the step through which they keep to them; the areas they keep to after that, through known steps: their
activities' places) are not guessed at: a blocker whose route keeps it farther than R + V from an agent at that
agent's step is dropped as a blocker when either arrives at a step, without a bet (a held result freed so commits;
a unit freed so is `promised`: it runs as any unit does, its members together, but hidden from the causality
checker and excused by the neighbour query, which know only `ctx.stay` promises), and one whose route ends before
the unit's step is guessed to walk on from its route's tiles, and from anywhere in its last area once that ends. A
route is a promise, checked at every commit (`BrokenRoute`); the causality checker does not know routes, so with
routes the policy does not claim its invariant. An agent whose route says it talks with nobody at its step
(`Route.alone`: asleep, or already in a conversation) is coupled with nobody there (its edges are dropped when
either end arrives; both run `promised`): agents at one step read each other from the store as of that step in any
order, so only the writes of a conversation need one unit. Two agents that both talk only to agents in sight
(`Routes.talks_in_sight`) are coupled only within R, and a blocker of that kind matters only within R: by its route,
by the metropolis bound itself (walking its fastest), by a bet's guess and by its validation.

Apart (`window.apart`): a bet on the answer, not on a blocker. Two coupled agents are one unit because either may
touch the other (`ctx.partner`: a conversation), yet almost no step does. So a cluster's agents run as separate
units, each as soon as its own blockers allow, betting that none touches another. A run apart is held until its
cluster is final: every agent coupled with it, transitively, runs apart too, is released by its blockers (no
newcomer can join the cluster any more), and has said it will touch nobody more at the step (`ctx.no_more_partners`,
or its run ended). Then no agent of the cluster can write into another, every run read only the step's snapshot and
its own state, and each is what `serial` would do. A touch between two runs apart undoes both (the engine raises it
where the step touches, before anything is written), and the two run again as one unit at that step, their part of
the cluster (`rejoin`); the rest of the cluster read neither, so its runs stand. Joining only the two matters: on
the busy hour at 100 agents (8 modelled L4s), running apart and joining the whole cluster on a touch gained 0.6
points of the oracle, joining the two 3.3 (89.0 % -> 92.3 %). A cluster's agents commit one by one, so an agent may
stand a step ahead of a coupled one within R: the commit invariant of the checker no longer holds (it is not
claimed), while the agent's next step is still blocked by the one behind it.

The window bounds the bet: a speculative unit is at most `depth` steps ahead of GVT, at most `share` of the running
units are speculative, and when the tokens of undone runs exceed `budget` of all tokens the depth halves (and grows
back by one per validated unit while the share stays under half the budget).
"""

from __future__ import annotations

from metropolis.scheduling.base import INF
from metropolis.scheduling.metropolis import MetropolisScheduler
from metropolis.scheduling.rules import may_have_reached
from metropolis.scheduling.speculative_routes import BrokenRoute, Route, Routes
from metropolis.scheduling.speculative_window import Window
from metropolis.scheduling.table import AgentView, Status
from metropolis.scheduling.unit import WorkUnit
from metropolis.world.spatial import Pos
from metropolis.world.world import World

HELD = -1  # a pseudo-blocker: the agent's undone run has not unwound yet
# A refused offer or bet: (the step or GVT it was refused at, the agent that refused it, what that one looked like)
Refusal = tuple[int, int, tuple[object, ...]]


class SpeculativeScheduler(MetropolisScheduler):
    name = "speculative"
    keeps_invariant = True  # at every commit: only validated units commit
    # Bets do not dispatch clear, but a bet that an agent behind it reaches within R + V is undone (`conflicts`),
    # so the neighbour query may read only the agents that reached the step, as under metropolis.

    def __init__(
        self,
        world: World,
        table: AgentView,
        *,
        priority: bool = True,
        window: Window | None = None,
        routes: Routes | None = None,
    ) -> None:
        self.window = window if window is not None else Window()
        self.routes = routes
        if routes is not None or self.window.apart:
            # the checker's rules know no routes, and coupled agents run apart commit one by one (docstring)
            self.keeps_invariant = False  # type: ignore[misc]
        self.proven = 0  # blockers dropped on the strength of their routes
        self.decoupled = 0  # coupling edges dropped: one end alone (`Route.alone`), or both in sight beyond R
        self.quieted = 0  # of those, edges dropped only because both ends said they will not talk (`quiet_with`)
        self.kept_alone = 0  # blockers dropped only because the agent they blocked is alone (kept within R + V)
        self.kept_in_sight = 0  # blockers dropped only because both talk only to agents in sight (within R + V)
        super().__init__(world, table, priority=priority)

    def enable(self) -> None:
        """Start betting. Only an owner that holds speculative results until they settle may call it (the engine's
        `Speculation`); driven bare by a plain `Dispatcher` (`bench scheduler`), the policy is `metropolis`."""
        self.depth = self.window.depth

    def _start(self) -> None:
        self.depth = 0  # no bets before `enable`
        self._blocked_at: dict[int, set[int]] = {}  # step -> agents that arrived there blocked (lazily pruned)
        self._speculative: set[WorkUnit] = set()
        self._chained: set[WorkUnit] = set()  # lone steps run on a held result, adopted when it commits
        self._offers: dict[int, tuple[int, Pos]] = {}  # agent -> (next step, position) of its held result
        self._offers_at: dict[int, set[int]] = {}  # step -> agents with an offer for it
        self._chain_of: dict[tuple[int, int], WorkUnit] = {}  # (agent, step) -> the chained unit it runs in
        # agent -> (GVT, the agent that refused its offer, what that one looked like then): `_pop_chained` asks
        # again only once GVT or that agent changed, or an offer at the same step came or went
        self._tried: dict[int, Refusal] = {}
        self._bet_tried: dict[int, Refusal] = {}  # the same for `_pop_speculative`
        self._released: list[int] = []  # speculative members whose last blocker left (`take_released`)
        # agent -> the speculative unit it runs in from its table row (not on a held result): conflicts find it
        self._spec_of: dict[int, WorkUnit] = {}
        self._running = 0  # units dispatched and not yet committed or aborted
        self._kept_tokens = 0
        self._wasted_tokens = 0
        self.dispatched_speculatively = 0
        self.aborted = 0
        self.chained_clusters = 0  # chained units of more than one agent
        self.chained_across = 0  # of those, units whose held results came from different units
        self.joined = 0  # agents that joined a chained unit from their table row
        self._below: dict[int, tuple[int, ...]] = {}  # agent -> the members of the unit whose result it offers
        self._promised: set[WorkUnit] = set()  # units freed by routes, run hidden (module docstring)
        self._promised_of: dict[int, WorkUnit] = {}  # member -> its running promised unit
        # agent -> the step at which routes dropped some of its blockers or partners: its unit runs `promised`
        self._kept_at: dict[int, int] = {}
        self._moved_at = [0] * self.n  # agent -> the step at which it last arrived somewhere new
        self._seen = list(self.table.pos)  # agent -> its position when `_moved_at` was last looked at
        routes = self.routes
        self._in_sight = [routes is not None and routes.talks_in_sight(a) for a in range(self.n)]
        self._apart: dict[int, WorkUnit] = {}  # agent -> its run apart from its coupled agents (`Apart`, docstring)
        self._said: set[int] = set()  # agents running apart that will touch nobody more at their step
        # agent -> (step, the agents it runs with there, apart from the rest of its cluster): joined by `rejoin`
        self._parts: dict[int, tuple[int, tuple[int, ...]]] = {}
        self.apart = 0  # units run apart from coupled agents
        self.rejoined = 0  # touches between runs apart: the two parts undone and joined into one (`rejoin`)
        super()._start()

    # -- dispatch ---------------------------------------------------------------------------------------------

    def pop_ready(self) -> WorkUnit | None:
        unit = super().pop_ready()
        if unit is not None and self._kept_at and unit not in self._speculative:
            kept_at = self._kept_at
            if any(kept_at.get(m) == unit.step for m in unit.members):
                self._promised.add(unit)
                self._promised_of.update(dict.fromkeys(unit.members, unit))
        if unit is None:
            unit = self._pop_speculative()
        if unit is None and self._offers:
            unit = self._pop_chained()
        if unit is not None:
            self._running += 1
        return unit

    def _cluster_unit(self, seed: int, cluster: list[int]) -> WorkUnit | None:
        """`seed` runs apart from the rest of its cluster where the cluster does (`_runs_apart`), with the agents
        it was joined with at this step (its part, `rejoin`), once none of them is blocked; else with the cluster."""
        step = self.table.step[seed]
        if len(cluster) > 1 and self._runs_apart(cluster):
            part = self._part_of(seed, step)
            blocked_by = self.blocked_by
            if len(part) > 1 and any(blocked_by[m] for m in part):
                return None  # the blocked one is pushed again when it is released
            return self._run_apart(part, cluster)
        return super()._cluster_unit(seed, cluster)

    def _runs_apart(self, cluster: list[int]) -> bool:
        """Whether the agents of `cluster` run apart: all of them once one does, and otherwise while bets are on."""
        apart = self._apart
        return any(m in apart for m in cluster) or (self.depth > 0 and bool(self.window.apart))

    def _part_of(self, agent: int, step: int) -> tuple[int, ...]:
        """The agents `agent` runs with, apart from the rest of its cluster at `step`: itself, or those it was
        joined with there (`rejoin`)."""
        part = self._parts.get(agent)
        return part[1] if part is not None and part[0] == step else (agent,)

    def _run_apart(self, part: tuple[int, ...], cluster: list[int]) -> WorkUnit:
        """Dispatch `part` apart from the rest of `cluster`. The ready agents of the rest are pushed again: one may
        have been dropped when the cluster ran whole and a member was blocked (the policy stopped betting)."""
        status, blocked_by, apart = self.table.status, self.blocked_by, self._apart
        for m in cluster:
            if m not in part and m not in apart and status[m] is Status.WAITING and not blocked_by[m]:
                self._push(m)
        # Its group is the cluster, as one unit's would be: what the agents may touch (`ctx.partner`: a touch
        # outside the part is the lost bet) and see as their cluster (`ctx.group`) does not change by running apart.
        unit = WorkUnit(self.table.step[part[0]], part, tuple(cluster))
        self._speculative.add(unit)
        for m in part:
            self._spec_of[m] = unit
            apart[m] = unit
        self.apart += 1
        return unit

    def touches_apart(self, agent: int, other: int) -> bool:
        """Whether `agent`, running apart, touches `other` of its own cluster outside its unit: the bet is lost
        (`rejoin`)."""
        unit = self._apart.get(agent)
        if unit is None or other in unit.members:
            return False
        return other in unit.group or other in self.cluster_of(agent)  # the cluster as dispatched, or grown since

    def rejoin(self, agent: int, other: int) -> list[WorkUnit]:
        """`agent`, running apart, touched `other` of its cluster: their parts run as one unit at this step, apart
        from the rest still. The dispatcher aborts the units returned (the two parts' runs) and the engine undoes
        them; the rest of the cluster read neither, so their runs stand."""
        step, apart = self.table.step[agent], self._apart
        joined = tuple(sorted({*self._part_of(agent, step), *self._part_of(other, step)}))
        for m in joined:
            self._parts[m] = (step, joined)
        self.rejoined += 1
        return list(dict.fromkeys(apart[m] for m in joined if m in apart))

    def said(self, agent: int) -> bool:
        """`agent`, running apart, will touch nobody more at its step (it said so, or its run ended): its
        cluster's held runs may be final now (`settled`), and are looked at again. False: it does not run apart."""
        if agent not in self._apart:
            return False
        self._said.add(agent)
        self._released.append(agent)
        return True

    def _final_apart(self, agent: int) -> bool:
        """Whether the cluster `agent` runs apart in is final: every agent of it runs apart, released by its
        blockers, and will touch nobody more (module docstring)."""
        apart, said, blocked_by = self._apart, self._said, self.blocked_by
        return all(m in apart and m in said and not blocked_by[m] for m in self.cluster_of(agent))

    def is_speculative(self, unit: WorkUnit) -> bool:
        """Whether the unit's dispatch is hidden from the observers: a bet, or a unit its blockers' routes freed
        (`promised`)."""
        return unit in self._speculative or unit in self._chained or unit in self._promised

    def is_bet(self, unit: WorkUnit) -> bool:
        """Whether the unit runs on a guess: its results are held until `settled`, and it may be undone."""
        return unit in self._speculative or unit in self._chained

    def promised(self, unit: WorkUnit) -> bool:
        """A unit that runs on its blockers' routes, not on a guess: it is never undone, and commits as it ends."""
        return unit in self._promised

    def runs_promised(self, agent: int) -> bool:
        """Whether `agent` is running in a `promised` unit (the neighbour query cannot check it: routes)."""
        return agent in self._promised_of

    def _may_bet(self) -> bool:
        bets = len(self._speculative) + len(self._chained)
        return self.depth > 0 and bets + 1 <= max(1.0, self.window.share * (self._running + 1))

    def _pop_speculative(self) -> WorkUnit | None:
        """The first blocked cluster, lowest step first, whose blockers are all guessed to stay away. A refused
        cluster is guessed at again only once the agent that refused it changed (`_bet_tried`): a cluster that
        grows meanwhile only gains blockers."""
        if not self._may_bet():
            return None
        table = self.table
        gvt, steps, status, blocked_by, tried = table.gvt(), table.step, table.status, self.blocked_by, self._bet_tried
        for step in sorted(self._blocked_at):
            if step > gvt + self.depth:
                break
            agents = self._blocked_at[step]
            stale = [a for a in agents if steps[a] != step or status[a] is not Status.WAITING or not blocked_by[a]]
            agents.difference_update(stale)
            if not agents:
                del self._blocked_at[step]
                continue
            for seed in sorted(agents):
                if self._still_refused(tried.get(seed), step):
                    continue
                cluster = self.cluster_of(seed)
                apart = len(cluster) > 1 and self._runs_apart(cluster)
                members = self._part_of(seed, step) if apart else tuple(cluster)
                culprit = next((c for m in members if (c := self._guess_refusal(m, step)) is not None), None)
                if culprit is not None:
                    tried[seed] = self._refusal(step, culprit)
                    continue
                if apart:
                    self.dispatched_speculatively += 1
                    agents.difference_update(members)
                    return self._run_apart(members, cluster)
                unit = WorkUnit(step, members, members)
                self._speculative.add(unit)
                self._spec_of.update((m, unit) for m in members)
                self.dispatched_speculatively += 1
                agents.difference_update(members)
                return unit
        return None

    def _guess_refusal(self, member: int, step: int) -> int | None:
        """The agent that keeps `member` from running `step` on a guess: itself while held back or not waiting,
        else a blocker not guessed to stay farther than R + V from it at `step`; None: none does."""
        table = self.table
        blockers = self.blocked_by[member]
        if HELD in blockers or table.status[member] is not Status.WAITING:
            return member
        pm = table.pos[member]
        return next((b for b in blockers if self._may_come(b, pm, step, self._reach(member, b))), None)

    def _reach(self, agent: int, other: int) -> float:
        """How near `other` at `agent`'s step matters to `agent`: R + V (coupled, or seen), or R where `agent` is
        alone at its step (`Route.alone`: coupled with nobody, only what it sees matters) or where the two are
        coupled only within R (`_pair_radius`)."""
        return self.R if self._alone(agent) else self._pair_radius(agent, other)

    def _pair_radius(self, a: int, b: int) -> float:
        """Within what distance `a` and `b` at one step are coupled: R + V, or R where both talk only to agents in
        sight (`Routes.talks_in_sight`): neither reads or writes the other from farther than R."""
        sight = self._in_sight
        return self.R if sight[a] and sight[b] else self.couple_radius

    def _may_come(self, agent: int, pos: Pos, step: int, reach: float | None = None) -> bool:
        """The guess: may `agent` come within `reach` (R + V unless said) of `pos` by the time it reaches `step`?"""
        table = self.table
        reach = self.couple_radius if reach is None else reach
        route = self._route(agent)
        if route is None:
            walked = self._walk(agent) * table.moves(agent, step)
            return self.metric.distance(pos, table.pos[agent]) - walked <= reach
        ahead, dist = step - table.step[agent], self.metric.distance
        kept = route.kept_from(pos, ahead, step, dist, reach)
        if kept is not None and (kept > reach or route.until >= step):
            return kept <= reach  # its promise decides
        walk = self._walk(agent)  # the guess: it walks on from its route's tiles, within what it promised
        near = route.nearest(pos, ahead, dist) - walk * (step - route.until)
        area = route.last_area()
        if area is not None and area[0] < step:  # and on from anywhere in its last area, once that ends
            walked = walk * (step - area[0])
            near = max(near, route.beyond_area(pos, dist, reach + walked) - walked)
        return near <= reach

    def _route(self, agent: int) -> Route | None:
        """The route `agent` published when it reached its step in the table, if any."""
        return None if self.routes is None else self.routes.route(agent, self.table.step[agent])

    def _kept_away(self, blocker: int, agent: int) -> bool:
        """Whether `blocker` stays farther than R + V from `agent` up to `agent`'s step, by its route: then it can
        neither be coupled with `agent` there nor be seen by it. Farther than R is enough where `agent` is alone at
        its step (`Route.alone`: it is coupled with nobody there, so only what it sees matters) or where the two
        are coupled only within R (`_pair_radius`); that much the metropolis bound (walking its fastest) may show
        without a route."""
        table = self.table
        step, pos = table.step[agent], table.pos[agent]
        reach = self._reach(agent, blocker)
        if reach < self.couple_radius and not may_have_reached(
            self.metric.distance(pos, table.pos[blocker]), table.moves(blocker, step), reach, self.V
        ):
            self._count_kept(agent)
            return True
        route = self._route(blocker)
        if route is None:
            return False
        kept = route.kept_from(pos, step - table.step[blocker], step, self.metric.distance, reach)
        if kept is None or kept <= reach:
            return False
        if kept <= self.couple_radius:  # measured exactly only within `reach`: is it within R + V?
            kept = route.kept_from(pos, step - table.step[blocker], step, self.metric.distance, INF)
            if kept is not None and kept <= self.couple_radius:
                self._count_kept(agent)
        return True

    def _count_kept(self, agent: int) -> None:
        """A blocker within R + V is dropped only because R is reach enough for `agent`."""
        if self._alone(agent):
            self.kept_alone += 1
        else:
            self.kept_in_sight += 1

    def _drop_kept_away(self, agent: int) -> None:
        """Drop the blockers of `agent` that their routes keep away from it."""
        for b in [b for b in self.blocked_by[agent] if b != HELD and self._kept_away(b, agent)]:
            self._drop_blocker(b, agent)

    def _decouple(self, a: int) -> None:
        """Drop the coupling edges of `a`, just arrived, where either end promised to be alone at this step
        (`Route.alone`), or both talk only to agents in sight and stand farther than R apart, or both said they will
        not talk with each other (`Route.quiet_with`): they read each other as of the step from the store whatever
        order they run in, and neither writes into the other. Both run as `promised` units (the checker knows no
        such promise)."""
        step, coupled = self.table.step[a], self.coupled
        if self._alone(a):
            apart = list(coupled[a])
        else:
            pa, pos, dist, R, sight = self.table.pos[a], self.table.pos, self.metric.distance, self.R, self._in_sight
            apart = [
                b
                for b in coupled[a]
                if self._alone(b) or (sight[a] and sight[b] and dist(pa, pos[b]) > R) or self._quiet(a, b)
            ]
        for b in apart:
            coupled[a].discard(b)
            coupled[b].discard(a)
            self._kept_at[b] = step
        if apart:
            self._kept_at[a] = step
            self.decoupled += len(apart)

    def _quiet(self, a: int, b: int) -> bool:
        """Whether `a` and `b`, at one step, each said they will not talk with the other there (`Route.quiet_with`)."""
        ra, rb = self._route(a), self._route(b)
        quiet = ra is not None and rb is not None and b in ra.quiet_with and a in rb.quiet_with
        self.quieted += quiet
        return quiet

    def _alone(self, agent: int) -> bool:
        route = self._route(agent)
        return route is not None and route.alone

    def _drop_blocker(self, blocker: int, agent: int) -> None:
        """`blocker` blocks `agent` no more, on the strength of its route."""
        self.blocked_by[agent].discard(blocker)
        self.blocks[blocker].discard(agent)
        self.proven += 1
        self._kept_at[agent] = self.table.step[agent]

    def _walk(self, agent: int) -> float:
        """How far `agent` is guessed to walk towards a unit per step it may still move: nothing once it has
        stood still `window.still` steps (most agents of a town sit, work or sleep for long stretches)."""
        still = self.window.still
        if still and self.table.step[agent] - self._moved_at[agent] >= still:
            return 0.0
        return self.window.guess * self.V

    def offer_chain(self, members: tuple[int, ...], step: int, positions: list[Pos]) -> None:
        """The engine holds the result of a unit of `members`: they would stand at `positions` at `step`, and may
        run that step, as the clusters those positions form among them."""
        if step < self.until:
            for m, pos in zip(members, positions, strict=True):
                self._offers[m] = (step, pos)
                self._offers_at.setdefault(step, set()).add(m)
                self._below[m] = members
                self._forget_refusals(step, pos)

    def _forget_refusals(self, step: int, pos: Pos) -> None:
        """An offer for `step` at `pos` came or went: the clusters the held positions there form with it may change,
        so the offers coupled with it are asked again (a cluster's refusal is kept by each of its members)."""
        offers, tried, dist, reach = self._offers, self._tried, self.metric.distance, self.couple_radius
        for a in self._offers_at.get(step, ()):
            if a in tried and dist(offers[a][1], pos) <= reach:
                del tried[a]

    def _drop_offer(self, agent: int) -> None:
        offer = self._offers.pop(agent, None)
        self._tried.pop(agent, None)
        if offer is not None:
            at = self._offers_at[offer[0]]
            at.discard(agent)
            if not at:
                del self._offers_at[offer[0]]
            else:
                self._forget_refusals(*offer)

    def _pop_chained(self) -> WorkUnit | None:
        """The first held offer, lowest step first, whose cluster may run now. A refused offer is asked again only
        once what refused it may have changed (`_tried`): asking every offer after every commit cost most of the
        policy's time with hundreds of held results (busy hour of 1,000)."""
        if not self._may_bet():
            return None
        gvt, tried, offers_at = self.table.gvt(), self._tried, self._offers_at
        for step in sorted(offers_at):
            if step - gvt > self.depth:
                break
            for agent in sorted(offers_at[step]):
                if agent not in self._offers or self._still_refused(tried.get(agent), gvt):
                    continue  # taken with a co-member, or refused and nothing that refused it changed
                held = self._held_cluster(agent, step)
                joined, culprit = self._joiners(held, step)
                members = tuple(sorted((*held, *joined)))
                if culprit is None:
                    culprit = next((c for m in held if (c := self._chain_refusal(m, step, members)) is not None), None)
                if culprit is not None:
                    refused = self._refusal(gvt, culprit)
                    tried.update((m, refused) for m in held)
                    continue
                return self._chain(held, joined, members, step)
        return None

    def _refusal(self, at: int, culprit: int) -> Refusal:
        return at, culprit, self._looks(culprit)

    def _still_refused(self, memo: Refusal | None, at: int) -> bool:
        """Whether a refusal stands: asked again at the same step or GVT, and the agent that refused looks the same."""
        return memo is not None and memo[0] == at and self._looks(memo[1]) == memo[2]

    def _looks(self, agent: int) -> tuple[object, ...]:
        """What a refusal read of `agent`: its step, status, position, held offer and whether it is held back."""
        table = self.table
        return (
            table.step[agent],
            table.status[agent],
            table.pos[agent],
            self._offers.get(agent),
            HELD in self.blocked_by[agent],
        )

    def _chain(self, held: tuple[int, ...], joined: list[int], members: tuple[int, ...], step: int) -> WorkUnit:
        """Dispatch the chained unit of `held` (on their held results) and `joined` (from their table rows)."""
        for m in held:
            self._drop_offer(m)
        unit = WorkUnit(step, members, members)
        self._chained.add(unit)
        self._chain_of.update(((m, step), unit) for m in held)
        self._spec_of.update((m, unit) for m in joined)
        self.dispatched_speculatively += 1
        self.chained_clusters += len(members) > 1
        self.chained_across += len({self._below[m] for m in held}) > 1
        self.joined += len(joined)
        return unit

    def _held_cluster(self, agent: int, step: int) -> tuple[int, ...]:
        """The cluster `agent` forms at `step` with the other agents whose held results reach `step`, by their held
        positions (their results may be held in different units)."""
        offers, dist, pair = self._offers, self.metric.distance, self._pair_radius
        mates = sorted(self._offers_at[step])
        cluster, seen = [agent], {agent}
        for a in cluster:
            for b in mates:
                if b not in seen and dist(offers[a][1], offers[b][1]) <= pair(a, b):
                    seen.add(b)
                    cluster.append(b)
        return tuple(sorted(cluster))

    def _joiners(self, held: tuple[int, ...], step: int) -> tuple[list[int], int | None]:
        """The agents waiting at `step` in the table that the held positions of `held` couple with there, with
        their clusters: they run that step with `held`, on its held result (a cascade). Second: the agent that
        forbids it, if one does (it is not waiting, it is held, or it has a blocker outside the unit that is not
        guessed away: that blocker)."""
        table, dist, reach, offers = self.table, self.metric.distance, self.couple_radius, self._offers
        steps, status, pos = table.step, table.status, table.pos
        joined: list[int] = []
        seen = set(held)
        for h in held:
            here = offers[h][1]
            for b in table.near(here, reach):
                if b in seen or steps[b] != step or dist(here, pos[b]) > self._pair_radius(h, b):
                    continue
                if status[b] is not Status.WAITING:
                    return joined, b
                for c in self.cluster_of(b):
                    if c in self._apart:
                        return joined, c  # its cluster runs apart: it is not taken into a chained unit whole
                    if c not in seen:
                        seen.add(c)
                        joined.append(c)
        for t in joined:
            culprit = t if HELD in self.blocked_by[t] else self._joiner_refusal(t, step, seen)
            if culprit is not None:
                return joined, culprit
        return joined, None

    def _joiner_refusal(self, agent: int, step: int, unit: set[int]) -> int | None:
        """The agent that keeps `agent` from joining `unit` at `step`: a blocker outside `unit` not guessed to stay
        farther than R + V from it, or one whose held result outside `unit` stands within R + V of it there."""
        table, dist, pair = self.table, self.metric.distance, self._pair_radius
        pa = table.pos[agent]
        for b in self.blocked_by[agent]:
            if b not in unit and self._may_come(b, pa, step, pair(agent, b)):
                return b
        for b in table.near(pa, self.couple_radius):
            held = self._offers.get(b)
            if b not in unit and held is not None and held[0] == step and dist(pa, held[1]) <= pair(agent, b):
                return b
        return None

    def _chain_refusal(self, agent: int, step: int, members: tuple[int, ...]) -> int | None:
        """The agent outside `members` that `agent`, at its held position, would be coupled with at `step`, or
        that is behind and could come within their coupling radius of it (`_pair_radius`); None: none. Only a guess
        (the commit validates), so it looks only as far as a guessed walk reaches: no agent gains more than `guess` V
        per step it is behind."""
        table, dist, V = self.table, self.metric.distance, self.V
        steps, walk = table.step, self.window.guess * V
        offers = self._offers
        pos = offers[agent][1]
        for b in table.near(pos, self.couple_radius + walk * (step - table.gvt())):
            if b == agent or b in members:
                continue
            d, sb, reach = dist(pos, table.pos[b]), steps[b], self._pair_radius(agent, b)
            if sb == step and d <= reach:
                return b  # it would be coupled with b
            if sb < step:
                held = offers.get(b)
                if held is not None and held[0] == step and dist(pos, held[1]) <= reach:
                    return b  # b's held result stands there, at this step
                moves = table.moves(b, step)
                if may_have_reached(d, moves, reach, V) and self._may_come(b, pos, step, reach):
                    return b
        return None

    def _scan(self, a: int) -> None:
        super()._scan(a)
        if self.routes is not None and self.coupled[a]:
            self._decouple(a)
        if self.routes is not None and self.blocked_by[a]:
            self._drop_kept_away(a)
        if self.blocked_by[a]:
            self._blocked_at.setdefault(self.table.step[a], set()).add(a)

    # -- validation -------------------------------------------------------------------------------------------

    def conflicts(self, unit: WorkUnit) -> list[WorkUnit]:
        """Speculative units that `unit`'s members, just arrived at their step within R + V (R of a member alone
        there, or of two in sight: `_reach`), turn out to meet (unless they run in the same unit: a chained unit
        waits for exactly this arrival). Asked by the dispatcher after the table advanced and before `complete`."""
        if not self._spec_of:
            return []
        table, dist, spec_of = self.table, self.metric.distance, self._spec_of
        hit: set[WorkUnit] = set()
        for j in unit.members:
            sj, pj = table.step[j], table.pos[j]
            for a in self.blocks[j]:
                u = spec_of.get(a)
                if (
                    u is not None
                    and table.step[a] == sj
                    and j not in u.members
                    and dist(pj, table.pos[a]) <= self._reach(a, j)
                ):
                    hit.add(u)
        return sorted(hit, key=lambda u: (u.step, u.members))

    def settled(self, unit: WorkUnit) -> bool:
        """A speculative unit none of whose members is blocked any more: its run is what `serial` would do (a
        chained unit is not settled before it is adopted)."""
        if unit in self._chained or any(self.blocked_by[m] for m in unit.members):
            return False
        first = unit.members[0]
        return self._apart.get(first) is not unit or self._final_apart(first)

    def chained_on(self, agent: int) -> WorkUnit | None:
        """The step chained on `agent`'s step that just committed, if any."""
        return self._chain_of.get((agent, self.table.step[agent]))

    def chained_above(self, unit: WorkUnit) -> list[WorkUnit]:
        """The steps chained on `unit`'s members after its step, and on theirs: undone with it."""
        tainted, out = set(unit.members), []
        for u in sorted((u for u in self._chained if u.step > unit.step), key=lambda u: (u.step, u.members)):
            if tainted.intersection(u.members):
                tainted.update(u.members)
                out.append(u)
        return out

    def joined_in(self, unit: WorkUnit) -> list[int]:
        """The members of a speculative unit that run from their table row (all of an ordinary one; those that
        joined a chained one): their rows say RUNNING at the unit's step."""
        spec_of = self._spec_of
        return [m for m in unit.members if spec_of.get(m) is unit]

    def adopt(self, unit: WorkUnit) -> list[int] | None:
        """A step below `unit` committed. The agents that ran `unit` on held results and have now arrived at its
        step join it from their table rows if they are coupled with nobody outside it; once all have, it is an
        ordinary speculative unit. Returns the agents whose rows the dispatcher marks running again, or None: it
        must be undone (the dispatcher stops the joined agents' rows, then drops it with `drop_chain`)."""
        table, members, blocked_by = self.table, set(unit.members), self.blocked_by
        joined = set(self.joined_in(unit))
        arrived = [m for m in unit.members if m not in joined and table.step[m] == unit.step]
        if not all(
            table.status[m] is Status.WAITING
            and HELD not in blocked_by[m]
            and set(self.cluster_of(m)) <= members
            and not self._missed(m, members)
            for m in arrived
        ):
            return None
        if len(joined) + len(arrived) < len(members):
            self._spec_of.update((m, unit) for m in arrived)  # the rest of it is still held
            return arrived
        self._unchain(unit)
        self._speculative.add(unit)
        self._spec_of.update((m, unit) for m in unit.members)
        if not any(blocked_by[m] for m in unit.members):
            self._released.extend(unit.members)
        return list(unit.members)

    def _missed(self, agent: int, members: set[int]) -> bool:
        """Whether an agent outside `members` stands within R of `agent` at its step without being coupled with it
        (one of them is alone there): `agent` ran that step on a held result, perhaps before the other reached the
        step, when the neighbour query could not show it. Coupled ones are `cluster_of`'s to find."""
        table, dist, R = self.table, self.metric.distance, self.R
        step, pos = table.step[agent], table.pos[agent]
        return any(
            b not in members and b != agent and table.step[b] == step and dist(pos, table.pos[b]) <= R
            for b in table.near(pos, R)
        )

    def drop_chain(self, unit: WorkUnit) -> None:
        """A chained unit is undone (with the step below it, or refused at its adoption): its agents are held
        until the engine releases them; the dispatcher stopped the rows of those that joined it first."""
        self._unchain(unit)
        self._running -= 1
        self._hold_back(unit)

    def _unchain(self, unit: WorkUnit) -> None:
        self._chained.discard(unit)
        for m in unit.members:
            self._chain_of.pop((m, unit.step), None)

    def abort(self, unit: WorkUnit) -> None:
        """The dispatcher put `unit`'s members back to waiting: hold them until the engine has unwound their run,
        and find their partners and blockers afresh."""
        if unit in self._chained:
            self._unchain(unit)
        self._running -= 1
        self._speculative.discard(unit)
        self.aborted += 1
        self._hold_back(unit)

    def _hold_back(self, unit: WorkUnit) -> None:
        """`unit` is undone: the members that ran from their table row wait there again, found afresh; every
        member is held (no offer, `HELD`) until `release`."""
        joined = self.joined_in(unit)
        for m in unit.members:
            self._drop_offer(m)
        for m in joined:
            del self._spec_of[m]
            if self._apart.get(m) is unit:  # it stays coupled with its cluster, which runs apart still
                del self._apart[m]
                self._said.discard(m)
            else:
                self.coupled[m].clear()
        for m in joined:
            self._scan(m)
        for m in unit.members:
            self.blocked_by[m].add(HELD)

    def release(self, unit: WorkUnit) -> None:
        """The undone run of `unit` has unwound: its members may run again (one whose own held step lies below
        the undone one may settle now)."""
        for m in unit.members:
            blockers = self.blocked_by[m]
            blockers.discard(HELD)
            if not blockers:
                if self.table.status[m] is Status.WAITING:
                    self._push(m)
                elif m in self._spec_of:
                    self._released.append(m)

    def complete(self, unit: WorkUnit) -> None:
        self._running -= 1
        if self.routes is not None:
            self._keep_promises(unit)
        pos, seen = self.table.pos, self._seen
        for m in unit.members:
            if pos[m] != seen[m]:
                seen[m] = pos[m]
                self._moved_at[m] = self.table.step[m]
        spec_of = self._spec_of
        self._promised.discard(unit)
        for m in unit.members:
            self._kept_at.pop(m, None)
            self._promised_of.pop(m, None)
        if unit in self._speculative:
            self._speculative.discard(unit)
            for m in unit.members:
                del spec_of[m]
        for m in unit.members:
            offer = self._offers.get(m)
            if offer is not None and offer[0] <= self.table.step[m]:
                self._drop_offer(m)  # never taken: the agent runs that step the ordinary way
        apart, coupled, parts = self._apart, self.coupled, self._parts
        for m in unit.members:
            part = parts.get(m)
            if part is not None and part[0] == unit.step:
                del parts[m]
            if apart.get(m) is unit:  # its cluster's runs commit one by one: it leaves them (they are final)
                del apart[m]
                self._said.discard(m)
                for b in coupled[m]:
                    coupled[b].discard(m)
                    self._released.append(b)
        blocks = self.blocks
        watch = [a for j in unit.members for a in blocks[j] if a in spec_of] if spec_of else []
        super().complete(unit)
        self._released.extend(a for a in watch if not self.blocked_by[a])
        if self.routes is not None:
            self._free_kept_away(unit)

    def _keep_promises(self, unit: WorkUnit) -> None:
        """Each member stands where its route (as it knew it at the step it just committed) said it would."""
        table = self.table
        for m in unit.members:
            route = self.routes.route(m, unit.step) if self.routes is not None else None
            if route is not None and not route.keeps(table.pos[m], unit.step + 1, self.metric.distance):
                raise BrokenRoute(
                    f"agent {m} stands at {table.pos[m]} after step {unit.step}, off the route it published "
                    f"({route.until}, {route.areas})"
                )

    def _free_kept_away(self, unit: WorkUnit) -> None:
        """The members published new routes with their commit: the agents they still block may be kept away
        from now."""
        status, blocked_by, spec_of = self.table.status, self.blocked_by, self._spec_of
        for j in unit.members:
            for a in [a for a in self.blocks[j] if self._kept_away(j, a)]:
                self._drop_blocker(j, a)
                if blocked_by[a]:
                    continue
                if status[a] is Status.WAITING:
                    self._push(a)
                elif a in spec_of:
                    self._released.append(a)

    def take_released(self) -> list[int]:
        """Members of speculative units released since the last call: their units may have settled. A run apart
        settles with its cluster, so an agent running apart brings its cluster."""
        out, self._released = self._released, []
        apart = self._apart
        if apart:
            out = list(dict.fromkeys(m for a in out for m in (self.cluster_of(a) if a in apart else (a,))))
        return out

    # -- the window -------------------------------------------------------------------------------------------

    def record_tokens(self, kept: int, wasted: int) -> None:
        """Tokens of committed calls and of undone ones: the depth halves while waste is over budget."""
        self._kept_tokens += kept
        self._wasted_tokens += wasted
        total = self._kept_tokens + self._wasted_tokens
        if not total:
            return
        share = self._wasted_tokens / total
        if wasted and share > self.window.budget:
            self.depth //= 2
        elif kept and share < self.window.budget / 2 and self.depth < self.window.depth:
            self.depth += 1

    def wait_steps(self, agent: int) -> float:
        status = self.table.status[agent]
        if status is Status.DONE:
            return INF
        blockers = self.blocked_by[agent] - {HELD}
        if status is Status.RUNNING or not blockers:
            return 0.0
        mine, steps = self.table.step[agent], self.table.step
        return float(max(mine - steps[b] for b in blockers))
