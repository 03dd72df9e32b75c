"""Running a flow with no PBX: scripted keys, a fake clock, recorded (or stubbed) HTTP answers.

The DTMF script is whitespace-separated: each token answers one question (a menu, a collect, a
survey, …); `_` lets that question time out. "1 2#" presses 1 at the first menu and 2# at the next.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp

from controller.clock import Clock, FakeClock
from controller.ivr.flow import FlowSet
from controller.ivr.port import (
    CollectResult,
    CollectSpec,
    HttpResponse,
    Language,
    PlayResult,
    Prompt,
    QueueOutcome,
    QueueRequest,
    QueueResult,
    RecordingResult,
    RecordKind,
    RecordSpec,
    TransferResult,
    TransferTarget,
)
from controller.ivr.runner import FlowResult, run_flow

SECONDS_PER_PROMPT = 2.0


class SimulatedPort:
    def __init__(self, *, caller: str = "13800138000", did: str = "", dtmf: str = "",
                 clock: FakeClock | None = None, http_answers: Mapping[str, Mapping[str, Any]] | None = None,
                 queue_result: QueueResult = "answered_then_ended", overflow_target: str | None = None,
                 transfer_result: TransferResult = "connected_then_ended") -> None:
        self.call_id = "simulated-call"
        self.caller = caller
        self.did = did
        self.language: Language = "zh"
        self.fake_clock = clock or FakeClock()
        self.clock: Clock = self.fake_clock
        self.inputs = deque(dtmf.split())
        self.http_answers = dict(http_answers or {})
        self.queue_result = queue_result
        self.overflow_target = overflow_target
        self.transfer_result = transfer_result
        self.played: list[Prompt] = []
        self.requests: list[dict[str, Any]] = []
        self.queued: list[QueueRequest] = []
        self.saved: list[tuple[str, dict[str, Any]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.hung_up = False
        self.faxes_received: list[str] = []
        self._recordings = 0

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = False) -> PlayResult:
        self.played.extend(prompts)
        self.fake_clock.advance(SECONDS_PER_PROMPT * len(prompts))
        return PlayResult(None)

    async def collect(self, spec: CollectSpec) -> CollectResult:
        self.played.extend(spec.prompts)
        token = self.inputs.popleft() if self.inputs else "_"
        if token == "_":
            self.fake_clock.advance(spec.first_digit_timeout)
            return CollectResult("", "no_input")
        if spec.terminator and spec.terminator in token:
            return CollectResult(token[: token.index(spec.terminator)], "terminator")
        if len(token) >= spec.max_digits:
            return CollectResult(token[: spec.max_digits], "max_digits")
        self.fake_clock.advance(spec.inter_digit_timeout)
        return CollectResult(token, "inter_digit_timeout")

    async def record(self, spec: RecordSpec) -> RecordingResult:
        self._recordings += 1
        self.fake_clock.advance(5.0)
        return RecordingResult(f"{spec.kind}-{self.call_id}-{self._recordings}", 5.0, "silence")

    async def http_request(self, *, method: str, url: str, headers: Mapping[str, str], body: Any,
                           timeout_seconds: float) -> HttpResponse:
        self.requests.append({"method": method, "url": url, "body": body})
        for pattern, answer in self.http_answers.items():
            if pattern in url or fnmatch.fnmatch(url, pattern):
                return HttpResponse(int(answer.get("status", 200)), answer.get("json"), str(answer.get("text", "")),
                                    answer.get("error"))
        try:
            async with aiohttp.ClientSession() as session, session.request(
                    method, url, headers=dict(headers), json=body,
                    timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as response:
                text = await response.text()
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
                return HttpResponse(response.status, payload, text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return HttpResponse(0, error=str(exc) or type(exc).__name__)

    async def enqueue(self, request: QueueRequest) -> QueueOutcome:
        self.queued.append(request)
        answered = self.queue_result == "answered_then_ended"
        return QueueOutcome(self.queue_result, agent_id="sim-agent" if answered else None,
                            overflow_target=self.overflow_target if self.queue_result in ("overflow", "transferred")
                            else None)

    async def transfer(self, target: TransferTarget) -> TransferResult:
        return self.transfer_result

    async def hangup(self) -> None:
        self.hung_up = True

    async def receive_fax(self, fax_id: str) -> None:
        self.faxes_received.append(fax_id)

    async def save_record(self, kind: RecordKind, payload: Mapping[str, Any]) -> None:
        self.saved.append((kind, dict(payload)))

    def emit(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))


async def simulate(flows: FlowSet, flow_id: str, port: SimulatedPort, at: datetime | None = None) -> FlowResult:
    if at is not None:
        port.fake_clock = FakeClock(at)
        port.clock = port.fake_clock
    return await run_flow(flows, flow_id, port)
