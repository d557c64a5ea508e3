"""Test helpers for the generative agent: a tiny town (a real `Town` on a small map) and a scripted LLM."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from metropolis.kernel import Environment
from metropolis.llm.types import LLMRequest, LLMResponse
from metropolis.world.smallville import Persona, Town
from metropolis.world.spatial import Pos
from metropolis.world.tilemap import Place, TileMap
from metropolis.world.world import World

AREAS = {
    "Ann's house": ("main room", (1, 1, 5, 4), ["bed", "kitchen"]),
    "Bob's house": ("main room", (1, 7, 5, 10), ["bed", "desk"]),
    "Hobbs Cafe": ("cafe", (12, 1, 17, 4), ["cafe customer seating", "behind the cafe counter"]),
    "Johnson Park": ("park", (12, 7, 17, 10), ["park garden"]),
}


def mini_town(n: int = 2, radius: float = 4.0) -> Town:
    """19 x 12 open tiles with a wall column at x = 8 (gap at y = 5, 6); two houses, a cafe and a park."""
    walk = np.ones((12, 19), dtype=bool)
    walk[:, 8] = False
    walk[5:7, 8] = True
    places: dict[Pos, Place] = {}
    for sector, (arena, (x0, y0, x1, y1), objects) in AREAS.items():
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                obj = objects[(x - x0) % len(objects)] if y == y0 else ""
                places[(x, y)] = Place("the Ville", sector, arena, obj)
    tilemap = TileMap(19, 12, walk, places, name="mini")
    world = World(perception_radius=radius, max_velocity=1.0, tilemap=tilemap, name="mini")
    spatial = {"the Ville": {s: {a: objs} for s, (a, _, objs) in AREAS.items()}}
    people = [
        ("Ann Lee", (2, 2), "Ann's house", "owns Hobbs Cafe and works there all day", 7),
        ("Bob Ray", (2, 8), "Bob's house", "is a painter who likes to paint in Johnson Park", 7),
        ("Cat Kim", (3, 3), "Ann's house", "is a student who studies at Hobbs Cafe", 8),
    ]
    personas = []
    for name, spawn, home, job, wake in people[:n]:
        persona = Persona(
            name,
            spawn,
            {},
            spatial,
            [f"{name} knows everyone in town"],
            age=30,
            innate="friendly, curious",
            learned=f"{name} {job}.",
            currently=f"{name} is planning a party.",
            lifestyle=f"{name} goes to bed around 11pm, awakes up around {wake}am.",
            daily_plan_req=f"{name} {job}.",
            living_area=f"the Ville:{home}:main room",
        )
        personas.append(persona)
    return Town(world, personas)


class ScriptedLLM:
    """An LLMBackend answering from a function of the request; optionally takes virtual time per call."""

    def __init__(
        self, answer: Callable[[LLMRequest], str], env: Environment | None = None, latency: float = 1.0
    ) -> None:
        self.answer = answer
        self.env = env
        self.latency = latency
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        start = self.env.now if self.env is not None else 0.0
        if self.env is not None:
            await self.env.timeout(self.latency)
        text = self.answer(request)
        return LLMResponse(text, len(request.prompt_text()) // 4, len(text) // 4, start, start + self.latency)


LINES = [
    "Hello there, lovely weather today!",
    "It is. I'm off to the park.",
    "The cafe has fresh muffins this morning.",
    "Really? I should try them later.",
    "Do come by, they go fast.",
    "I will. Bye for now!",
]


def sensible_answer(request: LLMRequest) -> str:
    """A well-behaved model: valid JSON for every function, keyed on the prompt so agents differ."""
    prompt = request.prompt_text()
    f = request.function
    if f == "daily_plan":
        return '{"plan": ["wake up", "have breakfast", "work at the cafe", "lunch", "walk in the park"]}'
    if f == "hourly_schedule":
        return (
            '{"schedule": [{"hour": 7, "activity": "having breakfast"}, '
            '{"hour": 8, "activity": "working at the cafe"}]}'
        )
    if f == "task_decomp":
        return '{"subtasks": [{"task": "making coffee", "minutes": 10}, {"task": "serving customers", "minutes": 50}]}'
    if f == "action_area":
        options = prompt.split("Options:\n")[1].split("\nAnswer")[0].split("\n")
        return (
            '{"choice": "Johnson Park: park"}'
            if "- Johnson Park:park" in options
            else f'{{"choice": "{options[-1][2:]}"}}'
        )
    if f == "action_object":
        first = prompt.split("Options:\n- ")[1].split("\n")[0]
        return f'{{"choice": "{first}"}}'
    if f == "decide_to_talk":
        return '{"answer": "yes"}'
    if f == "conversation":
        so_far = prompt.split("Conversation so far:\n")[1].split("\nWrite")[0]
        n = 0 if so_far.startswith("(nobody") else len(so_far.splitlines())
        return f'{{"utterance": "{LINES[min(n, len(LINES) - 1)]}", "end": false}}'
    if f in ("chat_importance",):
        return '{"score": 6}'
    if f == "reflect":
        return '{"insights": ["people in town are friendly"]}'
    return "{}"
