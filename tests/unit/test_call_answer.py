"""A caller's channel that is up when it enters the application (ccc-inbound's `Answer()`) is answered without an
ARI request (issue 19: one request fewer per call); one that is still ringing is answered through ARI. Either way
the call is recorded answered once."""

from __future__ import annotations

from typing import Any

import pytest

from controller.ari.dispatcher import Dispatcher
from controller.ari.models import Channel
from controller.plugins.calls.session import CallSession


class Records:
    def __init__(self) -> None:
        self.answered_calls: list[str] = []

    def answered(self, call_id: str) -> None:
        self.answered_calls.append(call_id)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class CountingAri:
    def __init__(self) -> None:
        self.answers: list[str] = []

    async def answer(self, channel_id: str) -> None:
        self.answers.append(channel_id)


@pytest.mark.parametrize(("state", "requests"), [("Up", []), ("Ring", ["ch1"])])
async def test_answer_asks_asterisk_only_for_a_channel_not_up_yet(state: str, requests: list[str]) -> None:
    ari, records = CountingAri(), Records()
    channel = Channel("ch1", "PJSIP/trunk-1", state, "13900000000", "", "", "", "", "", "zh", "", {})
    session = CallSession(call_id="C1", channel=channel, did="100", direction="inbound", ari=ari,  # type: ignore[arg-type]
                          dispatcher=Dispatcher(lambda event: None), records=records, app_name="ccc",  # type: ignore[arg-type]
                          fallback_context="fallback")
    await session.answer()
    await session.answer()  # a second answer (the queue node after the flow's start) changes nothing
    assert ari.answers == requests
    assert session.answered and records.answered_calls == ["C1"]
