"""A call's events from the dispatcher to its waits (controller/plugins/calls/session.py): in order, each one
booked by `_observe` (keys, legs' ends, the caller's hang-up) whoever waits, the caller's end raising CallerHangup.

The path is hand-tuned (issue 19: the dispatcher delivers into the inbox directly, `_observe` lets most events pass
with one test, `wait_for` reads the inbox itself): these pin what it must still do."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.ari.dispatcher import Dispatcher
from controller.ari.models import Event, PlaybackFinished, parse_event
from controller.ivr.port import CallerHangup
from controller.plugins.calls import session as session_module
from controller.plugins.calls.session import CallSession
from tests.unit.test_ari_models import CHANNEL, message
from tests.unit.test_call_end import Records, UnansweringAri, session_with

LEG = CHANNEL | {"id": "leg-agent-3f2a"}


def dispatched(dispatcher: Dispatcher, kind: str, **fields: Any) -> None:
    dispatcher.dispatch(parse_event(message(kind, **fields)))


def call() -> tuple[CallSession, Dispatcher]:
    session = session_with(UnansweringAri(failures=0), Records())
    dispatcher: Dispatcher = session.dispatcher
    dispatcher.claim(session.channel_id, session)
    dispatcher.claim(LEG["id"], session)
    dispatcher.claim("pb-1", session)
    return session, dispatcher


def playback_finished(playback_id: str) -> Any:
    def match(event: Event) -> bool:
        return isinstance(event, PlaybackFinished) and event.playback.id == playback_id
    return match


async def test_every_event_is_booked_while_a_wait_looks_for_another() -> None:
    session, dispatcher = call()
    caller = CHANNEL | {"id": session.channel_id}
    waiting = asyncio.ensure_future(session.wait_for(playback_finished("pb-1"), 5))
    await asyncio.sleep(0)  # the wait is parked in the inbox: each event wakes it
    dispatched(dispatcher, "ChannelDtmfReceived", digit="4", duration_ms=100, channel=caller)
    dispatched(dispatcher, "ChannelDtmfReceived", digit="9", duration_ms=100, channel=LEG)  # the agent's: not ours
    dispatched(dispatcher, "Dial", dialstatus="RINGING", peer=LEG, caller=caller)
    dispatched(dispatcher, "ChannelHangupRequest", cause=17, channel=LEG)
    await asyncio.sleep(0)
    assert not waiting.done()
    dispatched(dispatcher, "PlaybackFinished", playback={"id": "pb-1", "target_uri": f"channel:{caller['id']}",
                                                         "state": "done"})
    event = await asyncio.wait_for(waiting, 1)
    assert isinstance(event, PlaybackFinished) and event.playback.id == "pb-1"
    assert session.dtmf == ["4"]
    assert session.ended_channels == {LEG["id"]} and not session.caller_gone
    assert session.inbox.pending() == 0


async def test_the_callers_hang_up_ends_a_wait_for_something_else() -> None:
    session, dispatcher = call()
    caller = CHANNEL | {"id": session.channel_id}
    dispatched(dispatcher, "ChannelDtmfReceived", digit="1", duration_ms=100, channel=caller)  # pending: taken first
    waiting = asyncio.ensure_future(session.wait_for(playback_finished("pb-1"), 5))
    await asyncio.sleep(0)
    assert not waiting.done() and session.dtmf == ["1"]
    dispatched(dispatcher, "ChannelHangupRequest", cause=17, channel=caller)
    with pytest.raises(CallerHangup):
        await asyncio.wait_for(waiting, 1)
    assert session.hangup_requested and session.hangup_cause == 17 and session.hangup_cause_txt == "User busy"
    with pytest.raises(CallerHangup):  # and every wait after it, at once
        await session.wait_for(playback_finished("pb-1"), 5)


async def test_a_wait_times_out_and_the_callers_end_is_booked_from_stasis_end_and_destroyed() -> None:
    session, dispatcher = call()
    caller = CHANNEL | {"id": session.channel_id}
    assert await session.wait_for(playback_finished("pb-1"), 0.01) is None
    dispatched(dispatcher, "StasisEnd", channel=caller)
    dispatched(dispatcher, "ChannelDestroyed", cause=21, cause_txt="Call Rejected", channel=caller)
    assert await session.next_event(0) is not None and session.left_stasis and not session.destroyed
    assert await session.next_event(0) is not None and session.destroyed
    assert (session.hangup_cause, session.hangup_cause_txt) == (21, "Call Rejected")


async def test_a_calls_end_waits_for_its_stasis_end_at_most_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "STASIS_END_WAIT", 0.3)
    loop = asyncio.get_running_loop()
    session, dispatcher = call()
    session.ari.session = None  # type: ignore[attr-defined]  # the hang-up's StasisEnd never comes
    started = loop.time()
    await asyncio.wait_for(session.finish(), 2)
    assert 0.25 <= loop.time() - started < 1.5 and session.state == "ended"
    assert session.records.ended_calls == ["C1"]  # type: ignore[attr-defined]

    session, dispatcher = call()
    session.ari.session = None  # type: ignore[attr-defined]
    caller = CHANNEL | {"id": session.channel_id}
    loop.call_later(0.05, lambda: dispatched(dispatcher, "StasisEnd", channel=caller))
    started = loop.time()
    await asyncio.wait_for(session.finish(), 2)
    assert loop.time() - started < 0.25 and session.left_stasis  # the StasisEnd ended the wait at once
