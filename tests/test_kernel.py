from __future__ import annotations

import pytest

from metropolis.kernel import Environment


def test_processes_interleave_by_time_and_sequence() -> None:
    env, log = Environment(), []

    async def child(d: float) -> float:
        await env.timeout(d)
        return d * 2

    async def proc(name: str, d: float) -> None:
        value = await env.process(child(d))
        log.append((name, env.now, value))

    env.process(proc("a", 2))
    env.process(proc("b", 1))
    env.process(proc("c", 1))
    env.run()
    assert log == [("b", 1.0, 2), ("c", 1.0, 2), ("a", 2.0, 4)]


def test_failed_process_is_raised_unless_handled() -> None:
    env = Environment()

    async def boom() -> None:
        await env.timeout(1)
        raise ValueError("boom")

    env.process(boom())
    with pytest.raises(ValueError, match="boom"):
        env.run()

    env2, seen = Environment(), []

    async def waiter() -> None:
        try:
            await env2.process(boom2())
        except ValueError as e:
            seen.append(str(e))

    async def boom2() -> None:
        raise ValueError("handled")

    env2.process(waiter())
    env2.run()
    assert seen == ["handled"]


def test_awaiting_a_foreign_awaitable_is_a_clear_error() -> None:
    import asyncio

    env = Environment()

    async def bad() -> None:
        await asyncio.sleep(0)

    env.process(bad())
    with pytest.raises(TypeError, match="only kernel events"):
        env.run()


def test_run_until_stops_the_clock() -> None:
    env, log = Environment(), []
    env.schedule(5, log.append, "late")
    env.run(until=3)
    assert (env.now, log) == (3, [])
    env.run()
    assert (env.now, log) == (5, ["late"])


def test_callbacks_for_now_keep_sequence_order_with_the_heap() -> None:
    # Zero-delay callbacks skip the heap; they must still run in (time, sequence id) order with entries that
    # were scheduled earlier for the same instant, and `run(until=)` must not run past its limit.
    env, log = Environment(), []

    def at_one(name: str) -> None:
        log.append((name, env.now))
        if name == "first":
            env.schedule(0.0, log.append, ("now-after-first", env.now))

    env.schedule(1.0, at_one, "first")
    env.schedule(1.0, at_one, "second")
    env.schedule(0.0, log.append, ("now", 0.0))
    env.run(until=0.5)
    assert log == [("now", 0.0)] and env.now == 0.5
    env.run()
    assert log == [("now", 0.0), ("first", 1.0), ("second", 1.0), ("now-after-first", 1.0)]
    assert env.peek() == float("inf")
