"""`CallPort` on a real call: what IVR nodes do, done with ARI through the call's session."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from controller import jsontext
from controller.ari.errors import AriError, ChannelGone
from controller.ari.models import ChannelDtmfReceived, Event, RecordingFailed, RecordingFinished
from controller.clock import Clock
from controller.ivr.port import (
    CallerHangup,
    CollectResult,
    CollectSpec,
    HttpResponse,
    Language,
    PlayResult,
    Prompt,
    QueueOutcome,
    QueueRequest,
    RecordingResult,
    RecordKind,
    RecordSpec,
    TransferResult,
    TransferTarget,
)
from controller.media.prompts import describe
from controller.plugins.calls.legs import Leg, connect_and_talk
from controller.plugins.calls.session import CallSession
from controller.store.db import Store

log = logging.getLogger("controller.ivr")
FAX_RECEIVE_CONTEXT = "ccc-fax-receive"  # dialplans/ccc-fax.conf

MediaFor = Callable[[Prompt], Awaitable[str]]
HttpRequester = Callable[..., Awaitable[HttpResponse]]
Enqueuer = Callable[[CallSession, QueueRequest], Awaitable[QueueOutcome]]
Emitter = Callable[[CallSession, str, dict[str, Any]], None]


class AriCallPort:
    def __init__(
        self,
        session: CallSession,
        *,
        clock: Clock,
        store: Store,
        media_for: MediaFor,
        http_request: HttpRequester,
        enqueue: Enqueuer | None,
        emit: Emitter,
        trunk_dial: str,
        phone_dial: str,
    ) -> None:
        self.session = session
        self.call_id = session.call_id
        self.caller = session.caller
        self.did = session.did
        self.clock = clock
        self._store = store
        self._media_for = media_for
        self._http_request = http_request
        self._enqueue = enqueue
        self._emit = emit
        self._trunk_dial = trunk_dial
        self._phone_dial = phone_dial
        self._recordings = 0

    @property
    def language(self) -> Language:
        return "en" if self.session.language.startswith("en") else "zh"

    @language.setter
    def language(self, value: Language) -> None:
        self.session.language = value

    # -- media ------------------------------------------------------------------------------------

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = False) -> PlayResult:
        media = []
        for prompt in prompts:
            media.append(await self._media_for(prompt))
            self.session.records.event(self.call_id, "prompt", text=describe(prompt))
        return PlayResult(await self.session.play(media, barge_in=barge_in))

    async def collect(self, spec: CollectSpec) -> CollectResult:
        loop = self.session.inbox.loop()  # known to the call's inbox: no getpid() on Python 3.11
        deadline = loop.time() + spec.total_timeout
        digits = ""
        if spec.prompts:
            first = await self.play(spec.prompts, barge_in=spec.barge_in)
            if first.interrupted_by:
                digits = first.interrupted_by
        while True:
            if spec.terminator and digits.endswith(spec.terminator):
                return CollectResult(digits[: -len(spec.terminator)], "terminator")
            if len(digits) >= spec.max_digits:
                return CollectResult(digits, "max_digits")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return CollectResult(digits, "total_timeout" if digits else "no_input")
            wait = min(remaining, spec.inter_digit_timeout if digits else spec.first_digit_timeout)
            digit = await self._next_digit(wait)
            if digit is None:
                if not digits:
                    return CollectResult("", "no_input")
                return CollectResult(digits, "inter_digit_timeout" if remaining > wait else "total_timeout")
            digits += digit

    async def _next_digit(self, timeout: float) -> str | None:
        if self.session.dtmf:
            return self.session.dtmf.pop(0)

        def is_digit(event: Event) -> bool:
            return isinstance(event, ChannelDtmfReceived) and event.channel.id == self.session.channel_id

        event = await self.session.wait_for(is_digit, timeout)
        if event is None:
            return None
        return self.session.dtmf.pop(0) if self.session.dtmf else None

    async def record(self, spec: RecordSpec) -> RecordingResult:
        self._recordings += 1
        name = f"{spec.kind}-{self.call_id}-{self._recordings}"
        try:
            await self.session.ari.record(
                self.session.channel_id, name, fmt="wav", max_duration=int(spec.max_seconds),
                max_silence=int(spec.silence_seconds), beep=spec.beep,
                terminate_on=spec.terminator or "none", if_exists="overwrite")
        except ChannelGone as exc:
            raise CallerHangup() from exc

        def finished(event: Event) -> bool:
            return isinstance(event, RecordingFinished | RecordingFailed) and event.recording.name == name

        try:
            event = await self.session.wait_for(finished, spec.max_seconds + 10)
        except CallerHangup:
            # Hanging up ends the message: Asterisk keeps what was said, and the node stores it.
            self.session.records.event(self.call_id, "recording", name=name, kind=spec.kind, reason="hangup")
            return RecordingResult(name, 0.0, "hangup")
        if not isinstance(event, RecordingFinished):
            return RecordingResult(name, 0.0, "hangup")
        duration = float(event.recording.duration or 0)
        silence = event.recording.silence_duration or 0
        reason = "max_duration" if duration >= spec.max_seconds - 1 else "silence" if silence else "dtmf"
        return RecordingResult(name, duration, reason)  # type: ignore[arg-type]

    # -- outside world ----------------------------------------------------------------------------

    async def http_request(self, *, method: str, url: str, headers: Mapping[str, str], body: Any,
                           timeout_seconds: float) -> HttpResponse:
        return await self._http_request(method=method, url=url, headers=headers, body=body,
                                         timeout_seconds=timeout_seconds)

    async def enqueue(self, request: QueueRequest) -> QueueOutcome:
        if self._enqueue is None:
            return QueueOutcome("unavailable")
        return await self._enqueue(self.session, request)

    async def transfer(self, target: TransferTarget) -> TransferResult:
        endpoint = (self._trunk_dial.replace("{number}", target.number) if target.kind == "external"
                    else self._phone_dial.replace("{endpoint}", target.number))
        leg = Leg(self.session, endpoint, purpose="transfer", caller_id=self.caller, ring_timeout=target.timeout)
        self.session.records.event(self.call_id, "transfer", kind=target.kind)
        with_ringback = True
        try:
            await self.session.ari.ring(self.session.channel_id)
        except AriError:
            with_ringback = False
        outcome = await leg.dial()
        if with_ringback:
            try:
                await self.session.ari.ring_stop(self.session.channel_id)
            except ChannelGone as exc:
                raise CallerHangup() from exc
        if not outcome.answered:
            return "busy" if outcome.status == "BUSY" else "no_answer" if outcome.status in (
                "NOANSWER", "TIMEOUT") else "failed"
        await connect_and_talk(self.session, leg)
        return "connected_then_ended"

    async def hangup(self) -> None:
        await self.session.hangup()

    async def receive_fax(self, fax_id: str) -> None:
        await self.session.to_dialplan(FAX_RECEIVE_CONTEXT, {"CCC_FAX_ID": fax_id}, end_reason="fax")

    async def save_record(self, kind: RecordKind, payload: Mapping[str, Any]) -> None:
        data = jsontext.dumps(dict(payload))  # the record's payload and its call event's detail: encoded once
        self._store.write(
            "INSERT INTO ivr_records (call_id, kind, created_at, caller, did, payload) VALUES (?, ?, ?, ?, ?, ?)",
            (self.call_id, kind, self.clock.now(), self.caller, self.did, data))
        self.session.records.event_text(self.call_id, kind, data)

    def emit(self, event: str, **fields: Any) -> None:
        self._emit(self.session, event, fields)
