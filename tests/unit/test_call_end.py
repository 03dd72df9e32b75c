"""A call's end when Asterisk does not answer: the caller is hung up on a later try, and a call whose end
fails never takes the others down (call tasks run in the application's TaskGroup: one exception there
stopped the controller with every live call, seen at 80 calls/s in `bench_fullpath`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from controller.app import Controller
from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriUnavailable
from controller.ari.models import Channel
from controller.config import Config
from controller.plugins.calls import session as session_module
from controller.plugins.calls.services import CallsService
from controller.plugins.calls.session import CallSession


class Records:
    def __init__(self) -> None:
        self.ended_calls: list[str] = []

    def finished(self, call_id: str, data: dict[str, Any], **kwargs: Any) -> None:
        self.ended_calls.append(call_id)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class UnansweringAri:
    """Times out the first `failures` hang-ups, as an overloaded Asterisk does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.hangups = 0
        self.session: CallSession | None = None

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.hangups += 1
        if self.hangups <= self.failures:
            raise AriUnavailable("DELETE", f"/channels/{channel_id}", 0, "TimeoutError")
        if self.session is not None:
            self.session.left_stasis = True  # as the StasisEnd that follows (not delivered in this test)


def session_with(ari: UnansweringAri, records: Records) -> CallSession:
    channel = Channel("ch1", "PJSIP/x", "Up", "13900000000", "", "", "", "", "", "zh", "", {})
    session = CallSession(call_id="C1", channel=channel, did="100", direction="inbound", ari=ari,  # type: ignore[arg-type]
                          dispatcher=Dispatcher(lambda event: None), records=records, app_name="ccc",  # type: ignore[arg-type]
                          fallback_context="fallback")
    ari.session = session
    return session


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "HANGUP_RETRY_DELAYS", (0.0, 0.0, 0.0))


async def test_a_hang_up_that_times_out_is_tried_again_and_the_record_ends() -> None:
    ari, records = UnansweringAri(failures=2), Records()
    session = session_with(ari, records)
    await session.finish()
    assert ari.hangups == 3 and session.hung_up_by_us
    assert records.ended_calls == ["C1"]


async def test_a_hang_up_that_never_gets_an_answer_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    ari, records = UnansweringAri(failures=100), Records()
    await session_with(ari, records).finish()
    assert ari.hangups == 4  # the first try and one per delay
    assert records.ended_calls == ["C1"]
    assert "could not be hung up" in caplog.text


async def test_a_call_whose_end_fails_does_not_raise_into_the_application(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    published: list[str] = []
    calls = CallsService(config=Config(), ari=None, dispatcher=Dispatcher(lambda event: None),  # type: ignore[arg-type]
                         records=Records(), spawn=lambda coro: None,  # type: ignore[arg-type]
                         publish=lambda kind, **fields: published.append(kind))
    session = session_with(UnansweringAri(failures=0), Records())

    async def broken_finish() -> None:
        raise RuntimeError("a bug in a call's end")

    monkeypatch.setattr(session, "finish", broken_finish)
    calls.active[session.call_id] = session  # type: ignore[assignment]
    async with asyncio.TaskGroup() as tasks:  # as the controller runs its calls (`Controller.spawn`): must not raise
        Controller.spawn(SimpleNamespace(_tasks=tasks, _call_tasks=set()), calls._end(session))  # type: ignore[arg-type]
    assert published == ["call.ended"] and session.call_id not in calls.active
    assert "a call's task failed" in caplog.text and "a bug in a call's end" in caplog.text


async def test_a_failing_call_task_does_not_cancel_the_controllers_other_tasks(
        caplog: pytest.LogCaptureFixture) -> None:
    other_done = asyncio.Event()

    async def failing_call() -> None:
        raise RuntimeError("a bug in one call")

    async def other_call() -> None:
        await asyncio.sleep(0.05)
        other_done.set()

    async with asyncio.TaskGroup() as tasks:
        controller = SimpleNamespace(_tasks=tasks, _call_tasks=set())
        Controller.spawn(controller, failing_call())  # type: ignore[arg-type]
        Controller.spawn(controller, other_call())  # type: ignore[arg-type]
    assert other_done.is_set()
    assert "a call's task failed" in caplog.text
