"""A call's event inbox (controller/ari/dispatcher.py Inbox): order, timeouts, several waiters, cancellation.

Every event of every call passes through it, so it is hand-written (a future and a timer per wait, not an
asyncio.Queue and an asyncio.timeout context): these tests hold it to asyncio.Queue's guarantees, on asyncio's
loop and on uvloop (the controller's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from controller.ari.dispatcher import Inbox
from controller.ari.models import Event

LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


def event(name: str) -> Event:
    return Event(type=name, timestamp="", application="", raw={})


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    return LOOPS[request.param]


def test_events_come_out_in_order_at_once_when_pending(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        for name in ("a", "b", "c"):
            inbox.deliver(event(name))
        assert inbox.pending() == 3
        assert [(await inbox.get(0)).type for _ in range(3)] == ["a", "b", "c"]  # type: ignore[union-attr]
        assert await inbox.get(0) is None and inbox.pending() == 0
    run(scenario())


def test_a_wait_ends_with_the_event_or_none_at_its_deadline(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inbox = Inbox()
        started = loop.time()
        assert await inbox.get(0.05) is None
        assert 0.045 <= loop.time() - started < 1.0
        assert await inbox.get(0.01) is None
        assert not inbox._waiters  # the timed-out waits left nothing behind
        loop.call_later(0.02, inbox.deliver, event("late"))
        got = await inbox.get(5.0)
        assert got is not None and got.type == "late"
        assert loop.time() - started < 1.0  # woken by the event, not by the deadline
        loop.call_later(0.02, inbox.deliver, event("no timeout"))
        got = await inbox.get(None)
        assert got is not None and got.type == "no timeout"
        # The timed-out waits left nothing behind: the next event goes to the next wait.
        assert not inbox._waiters
        inbox.deliver(event("next"))
        got = await inbox.get(0.01)
        assert got is not None and got.type == "next"
    run(scenario())


def test_several_waiters_each_get_one_event_first_come_first_served(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        first = asyncio.create_task(inbox.get(5.0))
        second = asyncio.create_task(inbox.get(None))
        await asyncio.sleep(0)
        inbox.deliver(event("one"))
        inbox.deliver(event("two"))
        assert [(await first).type, (await second).type] == ["one", "two"]  # type: ignore[union-attr]
    run(scenario())


def test_a_cancelled_wait_loses_no_event(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        # Woken for an event and cancelled before it ran: the event goes to the other waiter.
        loop = asyncio.get_running_loop()
        cancelled = asyncio.create_task(inbox.get(5.0))
        other = asyncio.create_task(inbox.get(5.0))
        await asyncio.sleep(0)
        started = loop.time()
        inbox.deliver(event("kept"))
        cancelled.cancel()
        got = await other
        assert got is not None and got.type == "kept"
        assert loop.time() - started < 1.0  # handed on at once, not found at the other's deadline
        assert cancelled.cancelled()
        # Cancelled while nothing came: it leaves no waiter behind, and a later event stays for the next get.
        idle = asyncio.create_task(inbox.get(None))
        await asyncio.sleep(0)
        idle.cancel()
        await asyncio.gather(idle, return_exceptions=True)
        assert not inbox._waiters
        inbox.deliver(event("after"))
        got = await inbox.get(0)
        assert got is not None and got.type == "after"
    run(scenario())
