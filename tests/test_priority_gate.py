"""The client-side priority class: background requests wait at the gate while a person's request is out."""

from __future__ import annotations

import asyncio

import pytest

from metropolis.llm.client import OpenAIClient
from metropolis.llm.endpoints import endpoint
from metropolis.llm.priority_gate import InteractiveFirst, NoPriority, Preempting, PriorityGate, make_admission
from metropolis.llm.types import LLMBackend, LLMRequest, LLMResponse
from tests.fault_server import FaultServer


class Held:
    """A backend whose answers the test releases one by one; `log` is what reached it and what came back."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.answers: dict[str, asyncio.Event] = {}

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.log.append(("sent", request.agent))
        await self.answers.setdefault(request.agent, asyncio.Event()).wait()
        self.log.append(("done", request.agent))
        return LLMResponse(request.agent, 1, 1)

    def answer(self, agent: str) -> None:
        self.answers.setdefault(agent, asyncio.Event()).set()


class Logged:
    """What went out to a real endpoint and came back, in order."""

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner
        self.log: list[tuple[str, str]] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.log.append(("sent", request.agent))
        response = await self.inner.complete(request)
        self.log.append(("done", request.agent))
        return response


def ask(agent: str, interactive: bool = False) -> LLMRequest:
    function = "player_reply" if interactive else "decide"
    return LLMRequest(agent=agent, step=0, function=function, interactive=interactive)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_background_waits_while_a_person_waits_then_goes_in_arrival_order() -> None:
    inner = Held()
    gate = PriorityGate(inner, InteractiveFirst(cap=0))
    tasks = [asyncio.create_task(gate.complete(ask("a")))]
    await settle()
    tasks.append(asyncio.create_task(gate.complete(ask("you", interactive=True))))
    await settle()
    tasks += [asyncio.create_task(gate.complete(ask(name))) for name in ("b", "c")]
    await settle()
    assert inner.log == [("sent", "a"), ("sent", "you")] and gate.held == 2
    inner.answer("a")  # a background answer frees nothing while the person waits (cap 0)
    await settle()
    assert inner.log[-1] == ("done", "a")
    inner.answer("you")
    await settle()
    assert inner.log == [("sent", "a"), ("sent", "you"), ("done", "a"), ("done", "you"), ("sent", "b"), ("sent", "c")]
    for name in ("b", "c"):
        inner.answer(name)
    await asyncio.gather(*tasks)
    assert gate.max_background_while_interactive == 1  # a, sent before the person asked


async def test_a_cap_lets_that_many_background_requests_out_meanwhile() -> None:
    inner = Held()
    gate = PriorityGate(inner, InteractiveFirst(cap=1))
    person = asyncio.create_task(gate.complete(ask("you", interactive=True)))
    await settle()
    tasks = [asyncio.create_task(gate.complete(ask(name))) for name in ("a", "b")]
    await settle()
    assert inner.log == [("sent", "you"), ("sent", "a")]
    inner.answer("a")
    await settle()
    assert inner.log[-1] == ("sent", "b") and gate.held == 1
    for name in ("b", "you"):
        inner.answer(name)
    await asyncio.gather(person, *tasks)


async def test_no_priority_lets_everything_out() -> None:
    inner = Held()
    gate = PriorityGate(inner, NoPriority())
    tasks = [asyncio.create_task(gate.complete(ask("you", interactive=True)))]
    await settle()
    tasks += [asyncio.create_task(gate.complete(ask(name))) for name in ("a", "b")]
    await settle()
    assert inner.log == [("sent", "you"), ("sent", "a"), ("sent", "b")] and gate.held == 0
    for name in ("you", "a", "b"):
        inner.answer(name)
    await asyncio.gather(*tasks)


@pytest.mark.parametrize(("policy", "early"), [("interactive-first", 0), ("none", 3)])
async def test_against_a_server_without_priority_the_gate_holds_background_until_the_answer(
    policy: str, early: int
) -> None:
    """Over real HTTP (llama.cpp's dialect: no priority field): background requests asked while the person's is
    at the server reach it only after the answer, unless there is no gate."""
    with FaultServer(delay=0.3) as server:
        cfg = endpoint("llama.cpp", server.base_url, "m", api_key_env=None, read_timeout=5.0)
        async with OpenAIClient(cfg) as client:
            logged = Logged(client)
            gate = PriorityGate(logged, make_admission(policy))
            person = asyncio.create_task(gate.complete(ask("you", interactive=True)))
            await settle()
            town = [gate.complete(ask(f"w{i}")) for i in range(3)]
            await asyncio.gather(person, *town)
    answered = logged.log.index(("done", "you"))
    assert sum(1 for event, _ in logged.log[:answered] if event == "sent") - 1 == early
    assert len(server.arrivals) == 4 and all("priority" not in a.body for a in server.arrivals)
    assert gate.held == (3 if policy == "interactive-first" else 0)


async def test_preempting_calls_back_the_latest_background_sends_and_sends_them_again_after() -> None:
    inner = Held()
    gate = PriorityGate(inner, make_admission("preempt", 1))
    tasks = [asyncio.create_task(gate.complete(ask(name))) for name in ("a", "b", "c")]
    await settle()
    tasks.append(asyncio.create_task(gate.complete(ask("you", interactive=True))))
    await settle()
    assert inner.log == [("sent", "a"), ("sent", "b"), ("sent", "c"), ("sent", "you")]
    assert (gate.called_back, gate.background) == (2, 1)  # c and b dropped, a (within the cap of 1) kept
    inner.answer("you")
    await settle()
    assert inner.log[4] == ("done", "you") and sorted(inner.log[5:]) == [("sent", "b"), ("sent", "c")]
    for name in ("a", "b", "c"):
        inner.answer(name)
    assert [r.text for r in await asyncio.gather(*tasks)] == ["a", "b", "c", "you"]
    assert gate.background == gate.interactive == 0


async def test_preempting_over_http_drops_the_background_sends_and_sends_them_again() -> None:
    with FaultServer(delay=0.3) as server:
        cfg = endpoint("llama.cpp", server.base_url, "m", api_key_env=None, read_timeout=5.0)
        async with OpenAIClient(cfg) as client:
            gate = PriorityGate(client, make_admission("preempt"))
            town = [asyncio.create_task(gate.complete(ask(f"w{i}"))) for i in range(3)]
            while len(server.arrivals) < 3:  # all three at the server
                await asyncio.sleep(0.01)
            answers = await asyncio.gather(gate.complete(ask("you", interactive=True)), *town)
    assert gate.called_back == 3 and [a.agent for a in server.arrivals].count("you") == 1
    assert len(server.arrivals) == 7 and server.arrivals[3].agent == "you"
    assert all(r.text.startswith("re: ") for r in answers)


def test_policies_by_name_with_one_line_errors() -> None:
    assert make_admission("interactive-first", 2) == InteractiveFirst(2)
    assert make_admission("none") == NoPriority() and make_admission("preempt") == Preempting(0)
    with pytest.raises(ValueError, match="unknown priority gate 'fifo'; choose one of: none, interactive-first, pre"):
        make_admission("fifo")
    with pytest.raises(ValueError, match="must be >= 0, got -1"):
        InteractiveFirst(-1)


def test_a_run_with_a_player_against_a_server_without_priority_goes_through_the_gate() -> None:
    """`simulate` (and `metropolis run`) put the gate in front of llama.cpp's dialect when a person is in the town:
    the run completes, the person gets the server's answers, the same inputs are recorded."""
    from metropolis import simulate
    from metropolis.agents import RandomWalker, WalkerConfig
    from metropolis.agents.player import PlayerAgent
    from metropolis.agents.player_input import PlayerInput, Say

    walkers = [RandomWalker(f"w{i}", (4 + i, 4), WalkerConfig(call_prob=0.5, output_tokens=4)) for i in range(4)]
    player = PlayerAgent("you", (5, 5), PlayerInput({0: (Say("hi", to="w1"),), 2: (Say("again", to="w1"),)}))
    with FaultServer(delay=0.05) as server:
        result = simulate(walkers, "open", steps=4, llm=server.base_url, kind="llama.cpp", player=player)
    said = [e for events in result.steps[result.steps.name == "you"].events for e in events]
    assert [e for e in said if e.startswith("w1 to you: re: ")] and len(said) == 4
    assert result.player_inputs == {0: (Say("hi", to="w1"),), 2: (Say("again", to="w1"),)}
