"""The generative agent: wakes, plans its day, walks real paths, notices others, talks, remembers, reflects.

It calls the LLM only at a few moments (waking up, the top of each hour, the start of a task, noticing someone
new, reflecting) and otherwise walks its path without calls. All private state lives on the object and changes
only inside its own step or inside a conversation started by an agent of its cluster; time is simulated time.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import metropolis.agents.genagent.conversation as conversation
import metropolis.agents.genagent.planning as planning
import metropolis.agents.genagent.reflection as reflection
from metropolis.agents.genagent.config import GenAgentConfig
from metropolis.agents.genagent.embeddings import Embedder
from metropolis.agents.genagent.memory_stream import MemoryStream, RetrievalWeights
from metropolis.agents.genagent.navigation import AreaIndex, shortest_path
from metropolis.agents.genagent.parsing import RETRY_HINT, Asker, Messages, ParseStats
from metropolis.agents.genagent.persona import (
    Persona,
    home_area,
    identity,
    known_areas,
    sleep_hour,
    wake_hour,
)
from metropolis.agents.genagent.plan_hint import next_call_hint
from metropolis.agents.genagent.validation import ActivityCheck
from metropolis.engine.agent import Agent, Observation, StepContext
from metropolis.llm.types import LLMResponse
from metropolis.world.spatial import Pos

DAY = planning.DAY
START_DATE = dt.datetime(2023, 2, 13)  # the Smallville day starts February 13, 2023 at midnight


# The attributes its steps change (besides the memory stream): what `state_dict` saves.
_STEP_STATE = (
    "stats", "day_plan", "schedule", "planned_day", "planned_hour", "subtasks", "task", "address", "path",
    "chatting_with", "chat_until_step", "last_chat", "in_view", "last_seen",
)  # fmt: skip


class GenerativeAgent(Agent):
    def __init__(
        self,
        persona: Persona,
        index: AreaIndex,
        embedder: Embedder,
        config: GenAgentConfig | None = None,
        town_names: tuple[str, ...] = (),
    ) -> None:
        super().__init__(persona.name, persona.spawn, action="sleeping")
        self.persona = persona
        self.config = cfg = config or GenAgentConfig()
        self.index = index
        self.identity = identity(persona)
        # Names of everyone in town: the model's answers are no activity when they name someone (or parrot back
        # a whisper); checks are pure, so every scheduler and replay decides the same way.
        self.check = ActivityCheck.for_persona(persona.whispers, (persona.name, *town_names))
        self.areas = known_areas(persona)
        self.home = home_area(persona, self.areas) or index.area_of(persona.spawn) or next(iter(self.areas), "")
        self.wake = wake_hour(persona, cfg.default_wake_hour)
        self.sleep = sleep_hour(persona, cfg.default_sleep_hour)
        weights = RetrievalWeights(
            cfg.recency_weight, cfg.importance_weight, cfg.relevance_weight, cfg.recency_decay_per_minute
        )
        self.memory = MemoryStream(embedder, weights)
        for whisper in persona.whispers:
            self.memory.add("observation", whisper, 0.0, 5)
        self.memory.importance_since_reflection = 0
        self.stats = ParseStats()
        self.day_plan: list[str] = []
        self.schedule: dict[int, str] = {}
        self.planned_day: int | None = None
        self.planned_hour: tuple[int, int] | None = None
        self.subtasks: list[planning.Subtask] = []
        self.task: planning.Subtask | None = None
        self.address = ""
        self.path: list[Pos] = []
        self.chatting_with: str | None = None
        self.chat_until_step: int | None = None
        self.last_chat: dict[str, float] = {}
        self.in_view: tuple[str, ...] = ()
        self.last_seen: dict[str, str] = {}

    # -- helpers used by planning and conversation ------------------------------------------------------------

    def asker(self, ctx: StepContext, speaker: GenerativeAgent) -> Asker:
        """Calls made on `speaker`'s behalf (self, or a partner inside this step's conversation). Before each of
        its own calls the agent publishes its plan as it stands, so the step's last call follows the settled plan;
        a partner's lines publish none (they change no plan of the partner's). A retry after a rejected answer
        (its prompt ends with `RETRY_HINT`) samples at `retry_temperature`: at 0 the server would return the same
        rejected answer again."""
        speaker_id = speaker.unique_id if speaker.unique_id is not None else ctx.agent_id

        async def call(
            function: str, messages: Messages, max_tokens: int, schema: dict[str, Any] | None
        ) -> LLMResponse:
            if speaker is self:
                self.publish_plan(ctx)
            retry = bool(messages) and messages[-1].get("content") == RETRY_HINT  # `ask` rejected the last answer
            temperature = self.config.retry_temperature if retry else 0.0
            return await ctx.llm_for(
                speaker_id, function, messages, max_tokens=max_tokens, json_schema=schema, temperature=temperature
            )

        return Asker(call, self.config.max_retries, speaker.stats)

    def publish_plan(self, ctx: StepContext) -> None:
        """Publish the plan once a subtask of the plan covers now (see plan_hint.py); before that, nothing."""
        plan = next_call_hint(
            ctx.step, ctx.time_of_day, ctx.world.seconds_per_step, self.subtasks, self.awake, self.wake
        )
        if plan is not None:
            ctx.plan(plan.next_call)

    @staticmethod
    def clock_text(now: float) -> str:
        return (START_DATE + dt.timedelta(seconds=now)).strftime("%A %B %d, %Y, %H:%M")

    def awake(self, now: float) -> bool:
        hour = (now % DAY) / 3600.0
        return self.wake <= hour < self.sleep

    def busy(self, step: int) -> bool:
        return self.chat_until_step is not None and step < self.chat_until_step

    # -- the step ---------------------------------------------------------------------------------------------

    async def step(self, ctx: StepContext) -> None:
        now = ctx.time_of_day
        seen = ctx.observe()
        fresh = self._perceive(seen, now)
        if self.busy(ctx.step):
            ctx.act(f"chatting with {self.chatting_with}")
            return
        if not self.awake(now):
            self._sleep(ctx)
            return
        await self._plan(ctx, now)
        if await self._react(ctx, fresh):
            return
        ctx.no_more_partners()  # no conversation: the rest of the step (walking, reflecting) touches nobody
        self._walk(ctx)
        if reflection.should_reflect(self.memory, self.config):
            await reflection.reflect(self.asker(ctx, self), self.memory, self.identity, self.config, now)

    def _perceive(self, seen: list[Observation], now: float) -> list[Observation]:
        """Remember what others are doing when it changes; return the agents that just came into view."""
        fresh = [o for o in seen if o.name not in self.in_view]
        self.in_view = tuple(sorted(o.name for o in seen))
        if not self.awake(now):
            return []
        for o in seen:
            action = o.state.action.split(" @ ")[0]
            if self.last_seen.get(o.name) != action:
                self.last_seen[o.name] = action
                weight = 1 if action in ("sleeping", "idle") else 3 if action.startswith("chatting") else 2
                self.memory.add("observation", f"{o.name} is {action}", now, weight)
        return fresh

    def _sleep(self, ctx: StepContext) -> None:
        bed = self.index.nearest(f"{self.home}:bed", ctx.pos) or self.index.nearest(self.home, ctx.pos)
        if bed is not None and ctx.pos != bed and self.planned_day is not None:
            self._head_to(ctx, bed, "going home to sleep")
            return
        ctx.act(f"sleeping @ {self.home}:bed" if self.home else "sleeping")

    async def _plan(self, ctx: StepContext, now: float) -> None:
        """Plan the day at wake-up, the next hours when the schedule runs out, the tasks at each new hour."""
        day, hour = int(now // DAY), int((now % DAY) // 3600)
        ask, cfg = self.asker(ctx, self), self.config
        if self.planned_day != day:
            self.planned_day, self.schedule = day, {}
            memories = [m.text for m in self.memory.recent(cfg.retrieval_k)]
            date = (START_DATE + dt.timedelta(days=day)).strftime("%A %B %d, %Y")
            wake = max(self.wake, hour)
            self.day_plan = await planning.plan_day(
                ask, self.persona, self.identity, cfg, date, wake, self.sleep, memories
            )
            self.memory.add("plan", f"{self.name} plans to: " + "; ".join(self.day_plan), now, 5)
        if hour not in self.schedule:
            self.schedule.update(
                await planning.plan_schedule(
                    ask, self.persona, self.identity, cfg, self.day_plan, hour, self.wake, self.sleep, self.check
                )
            )
        if self.planned_hour != (day, hour):
            self.planned_hour = (day, hour)
            await self._plan_hour(ctx, now, hour)
        current = planning.current_subtask(self.subtasks, now)
        if current is not None and current != self.task:
            await self._start_task(ctx, current)

    async def _plan_hour(self, ctx: StepContext, now: float, hour: int) -> None:
        activity = self.schedule.get(hour, planning.SLEEPING)
        minutes = 60 - int((now % 3600) // 60)
        memories = [m.text for m in self.memory.retrieve(activity, now, self.config.retrieval_k)]
        here = self.index.area_of(ctx.pos) or self.home
        self.subtasks = await planning.plan_hour(
            self.asker(ctx, self),
            self.identity,
            self.config,
            activity,
            hour,
            minutes,
            sorted(self.areas),
            self.home,
            here,
            memories,
            self.check,
            timed_hook=self._timed,
        )
        self.memory.add("plan", f"At {hour}:00 {self.name} is {activity}", now, 3)

    def _timed(self, subtasks: list[planning.Subtask]) -> None:
        """The hour's times before its place: the place choice, often the step's last call, carries the plan."""
        self.subtasks = subtasks

    async def _start_task(self, ctx: StepContext, task: planning.Subtask) -> None:
        """Pick the object for the task and the path to it."""
        self.task = task
        objects = self.areas.get(task.area, [])
        obj = await planning.choose_object(self.asker(ctx, self), self.identity, self.config, task.task, objects)
        self.address = f"{task.area}:{obj}" if obj else task.area
        target = self.index.nearest(self.address, ctx.pos) or self.index.nearest(task.area, ctx.pos)
        self.path = shortest_path(self.index.tilemap, ctx.pos, target)[1:] if target is not None else []

    async def _react(self, ctx: StepContext, fresh: list[Observation]) -> bool:
        """Maybe start a conversation with someone who just came into view; True when one took place."""
        now = ctx.time_of_day
        for o in fresh:
            other = self._partner_candidate(ctx, o, now)
            if other is None:
                continue
            if not await conversation.want_to_talk(self, ctx, other, o.state.action.split(" @ ")[0]):
                continue
            await conversation.converse(self, ctx, other)
            ctx.act(f"chatting with {other.name}")
            return True
        return False

    def _partner_candidate(self, ctx: StepContext, o: Observation, now: float) -> GenerativeAgent | None:
        if o.agent_id not in ctx.group:
            return None
        # Reading the other's private state is an interaction too: ctx.partner records it for the trace.
        other = ctx.partner(o.agent_id)
        if not isinstance(other, GenerativeAgent) or not other.awake(now) or other.busy(ctx.step):
            return None
        last = self.last_chat.get(other.name)
        if last is not None and now - last < self.config.chat_cooldown_minutes * 60:
            return None
        return other

    def _walk(self, ctx: StepContext) -> None:
        task = self.task.task if self.task else planning.SLEEPING
        if self.path:
            parts = self.address.split(":")
            where = parts[1] if len(parts) > 1 else self.address
            self._head_to(ctx, None, walking_text(where, task))
            return
        ctx.act(f"{task} @ {self.address}" if self.address else task)

    def _head_to(self, ctx: StepContext, goal: Pos | None, action: str) -> None:
        if goal is not None and (not self.path or self.path[-1] != goal):
            self.path = shortest_path(self.index.tilemap, ctx.pos, goal)[1:]
        if self.path:
            ctx.move(self.path.pop(0))
        ctx.act(action)

    def state_dict(self) -> dict[str, Any]:
        """What its steps change: memories, plans, the task and path, chats, what it saw, parse counts. The
        persona, config, map index and embedder are fixed at construction and not saved."""
        state = {name: copy.deepcopy(getattr(self, name)) for name in _STEP_STATE}
        state["memory"] = self.memory.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in _STEP_STATE:
            setattr(self, name, copy.deepcopy(state[name]))
        self.memory.load_state_dict(state["memory"])

    def snapshot(self) -> object:
        return (
            self.memory.snapshot(),
            tuple(self.day_plan),
            tuple(sorted(self.schedule.items())),
            self.address,
        )


def walking_text(where: str, task: str) -> str:
    """ "walking to Hobbs Cafe, then having breakfast": grammatical for every activity, which is an -ing phrase."""
    return f"walking to {where}, then {task}" if task else f"walking to {where}"
