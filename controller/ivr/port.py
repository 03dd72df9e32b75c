"""The interface between IVR nodes and the telephony side.

Nodes never talk to ARI directly: they call a `CallPort`. The ARI adapter
(`controller.plugins.ivr.ari_port`) implements it on a real channel; the simulator
(`controller.ivr.simulator`) implements it with scripted DTMF and a fake clock. Every
method raises `CallerHangup` once the caller has gone, which ends the flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from controller.clock import Clock

Language = Literal["zh", "en"]
PromptKind = Literal["sound", "tts", "number", "digits", "money", "date", "time", "recording"]


class CallerHangup(Exception):
    """The caller hung up: the flow stops here (records are still written)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One thing to say.

    kind: sound (an Asterisk sound name, e.g. "hello-world" or "ccc/welcome"), tts (text rendered
    to speech), number / digits / money / date / time (value said in `language`), recording (a
    stored recording's name).
    """

    kind: PromptKind
    value: str
    language: Language = "zh"


@dataclass(frozen=True, slots=True)
class PlayResult:
    interrupted_by: str | None = None  # the DTMF digit that barged in, if barge-in was allowed


CollectReason = Literal["terminator", "max_digits", "inter_digit_timeout", "total_timeout", "no_input"]


@dataclass(frozen=True, slots=True)
class CollectResult:
    digits: str
    reason: CollectReason


@dataclass(frozen=True, slots=True)
class CollectSpec:
    prompts: Sequence[Prompt] = ()
    min_digits: int = 1
    max_digits: int = 1
    terminator: str | None = "#"
    first_digit_timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    total_timeout: float = 30.0
    barge_in: bool = True  # a key pressed during the prompts stops them and counts as input


RecordingKind = Literal["voicemail", "survey_comment"]


@dataclass(frozen=True, slots=True)
class RecordSpec:
    kind: RecordingKind
    max_seconds: float = 120.0
    silence_seconds: float = 5.0  # end after this much silence (0: never)
    beep: bool = True
    terminator: str | None = "#"


@dataclass(frozen=True, slots=True)
class RecordingResult:
    name: str  # the stored recording's name (unique per call)
    duration: float  # seconds
    reason: Literal["silence", "max_duration", "dtmf", "hangup"]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int  # 0 when the request failed (timeout, connection refused)
    json: Any = None
    text: str = ""
    error: str | None = None  # why it failed, naming no caller data (no URL: it may carry the number)
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class QueueRequest:
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> minimum level
    priority: int = 0  # higher goes first (customer tier)
    data: Mapping[str, Any] = field(default_factory=dict)  # call data for the screen pop
    # The flow hangs the caller up, with nothing played, once their talk with an agent is over (the queue node's
    # `answered` route): the talk bridge is destroyed without taking them out of it first (`Bridge.destroy`).
    hangs_up_after: bool = False


# answered_then_ended: an agent took the call and hung up, the caller is still here (survey next).
QueueResult = Literal["answered_then_ended", "transferred", "overflow", "timeout", "unavailable", "no_agents"]


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    result: QueueResult
    agent_id: str | None = None
    overflow_target: str | None = None  # e.g. "queue:vip", "voicemail", "callback", "node:after_hours"


@dataclass(frozen=True, slots=True)
class TransferTarget:
    kind: Literal["external", "extension"]
    number: str  # E.164/national number through the trunk, or an extension / endpoint name
    timeout: float = 30.0


TransferResult = Literal["connected_then_ended", "no_answer", "busy", "failed"]


RecordKind = Literal["voicemail", "callback", "survey", "fax"]


class CallPort(Protocol):
    call_id: str
    caller: str  # the caller's number as received ("" when withheld)
    did: str  # the dialled number
    language: Language  # current language; a flow may switch it (`set` node on var `language`)
    clock: Clock

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = False) -> PlayResult: ...

    async def collect(self, spec: CollectSpec) -> CollectResult: ...

    async def record(self, spec: RecordSpec) -> RecordingResult: ...

    async def http_request(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        timeout_seconds: float,
    ) -> HttpResponse: ...

    async def enqueue(self, request: QueueRequest) -> QueueOutcome: ...

    async def transfer(self, target: TransferTarget) -> TransferResult: ...

    async def hangup(self) -> None: ...

    async def receive_fax(self, fax_id: str) -> None:
        """Hand the call to the dialplan's fax receiver (ReceiveFAX), the fax named `fax_id`: the flow ends."""

    async def save_record(self, kind: RecordKind, payload: Mapping[str, Any]) -> None:
        """Store a voicemail / callback task / survey answer with the call's record."""

    def emit(self, event: str, **fields: Any) -> None:
        """An event for CTI (e.g. "ivr.node_entered", "ivr.input_collected")."""
