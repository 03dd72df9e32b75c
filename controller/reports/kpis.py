"""KPIs: each defined once, here (and in README "KPIs"), computed from facts about stored records.

Definitions (per row: an interval and a queue and/or agent; "counted" calls exclude short abandons):

| KPI | formula |
|---|---|
| offered | calls that entered the queue (plus IVR-only calls in `total` rows) |
| short_abandons | abandoned after waiting less than `short_abandon_seconds` |
| answered / abandoned / overflowed | calls by how they left the queue (abandoned excludes short abandons) |
| answer_rate (接通率) | answered / (offered − short_abandons) |
| abandon_rate (放弃率) | abandoned / (offered − short_abandons) |
| service_level | answered within `service_level_seconds` / (offered − short_abandons) |
| asa | mean wait of answered calls |
| att / avg_hold / avg_acw | mean talk / hold / ACW of answered calls |
| aht | mean (talk + hold + ACW) of answered calls |
| transfer_rate | answered calls transferred at least once / answered |
| one_stop_rate (一站式服务) | answered with no transfer and no callback requested / answered |
| callbacks_requested / callbacks_completed | callback tasks left by the calls, and those done |
| surveys / survey_avg / survey_distribution | answers 1–5 |
| complaint_rate | calls of complaint queues / counted |
| occupancy | (talking + on_hold + acw) / (that + ready) time of the row's agents |
| online / ready / not_ready_by_reason | agents' time (seconds) in the row's interval |
| breaches | talks over max_talk, ACW over max_acw, holds over max_hold, waits over max_wait |
| alerts | `alert.raised` events in the row (by kind: hold, acw, talk, wait, service_level) |

A rate whose denominator is zero is None (null in JSON), not 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class CallFact:
    call_id: str
    queue: str | None
    agent_id: str | None
    offered_at: float
    outcome: Literal["answered", "abandoned", "overflowed", "ivr_only"]
    wait_seconds: float
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    acw_seconds: float = 0.0
    transfers: int = 0
    callback_requested: bool = False
    callback_completed: bool = False
    survey_score: int | None = None
    complaint: bool = False


@dataclass(frozen=True, slots=True)
class AgentStateSpan:
    agent_id: str
    state: str
    reason: str | None
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class AlertFact:
    """A service-standard alert raised live (`alert.raised`), counted in the rows it belongs to."""

    at: float
    kind: str
    queue: str | None
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class CallbackFact:
    """A callback offer (virtual hold) or booking, counted in the row of its queue and request time."""

    requested_at: float
    queue: str
    offered: bool  # a virtual-hold offer (taken or not)
    accepted: bool  # booked (from an offer, the IVR or an agent)
    attempts: int
    connect_seconds: float | None  # from the request to the connection, when connected


@dataclass(frozen=True, slots=True)
class Standards:
    service_level_seconds: float = 20.0
    service_level_target: float = 0.8
    short_abandon_seconds: float = 5.0
    max_talk_seconds: float = 180.0
    max_acw_seconds: float = 60.0
    max_hold_seconds: float = 30.0
    max_wait_seconds: float = 600.0

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name == "service_level_target":
                if not 0 <= value <= 1:
                    raise ValueError(f"{item.name}: expected a fraction from 0 to 1 (0.8 for 80%), got {value!r}")
            elif not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{item.name}: expected a number of seconds >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Standards:
        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                raise ValueError(f"standards: unknown key {key!r} (expected one of: {', '.join(sorted(names))})")
        return cls(**{key: float(value) for key, value in data.items()})


@dataclass
class KpiRow:
    interval_start: float | None
    queue: str | None
    agent_id: str | None
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandons: int = 0
    overflowed: int = 0
    ivr_only: int = 0
    answer_rate: float | None = None
    abandon_rate: float | None = None
    service_level: float | None = None
    asa: float | None = None
    att: float | None = None
    avg_hold: float | None = None
    avg_acw: float | None = None
    aht: float | None = None
    transfer_rate: float | None = None
    one_stop_rate: float | None = None
    callbacks_requested: int = 0
    callbacks_completed: int = 0
    # Callbacks (README "Callbacks"): virtual-hold offers, callbacks booked, connected, dial attempts, and the
    # average time from the request to the connection.
    callback_offers: int = 0
    callback_accepted: int = 0
    callback_connected: int = 0
    callback_attempts: int = 0
    callback_avg_connect_seconds: float | None = None
    surveys: int = 0
    survey_avg: float | None = None
    survey_distribution: dict[str, int] = field(default_factory=lambda: {str(n): 0 for n in range(1, 6)})
    complaint_rate: float | None = None
    occupancy: float | None = None
    online: float = 0.0
    ready: float = 0.0
    not_ready_by_reason: dict[str, float] = field(default_factory=dict)
    breaches: dict[str, int] = field(default_factory=lambda: {"talk": 0, "acw": 0, "hold": 0, "wait": 0})
    alerts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def interval_start(moment: float, minutes: int | None, tz: ZoneInfo) -> float | None:
    if minutes is None:
        return None
    local = datetime.fromtimestamp(moment, tz)
    floored = local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0)
    return floored.timestamp()


def compute_report(calls: Iterable[CallFact], spans: Iterable[AgentStateSpan], *, start: float, end: float,
                   interval_minutes: int | None = None,
                   by: Literal["queue", "agent", "both", "total"] = "queue",
                   standards: Standards | None = None, tz: str = "Asia/Shanghai",
                   alerts: Iterable[AlertFact] = (), callbacks: Iterable[CallbackFact] = ()) -> list[KpiRow]:
    if interval_minutes not in (None, 15, 30, 60):
        raise ValueError("interval must be 15, 30 or 60 minutes")
    standards = standards or Standards()
    zone = ZoneInfo(tz)
    calls_by_key: dict[tuple[float | None, str | None, str | None], list[CallFact]] = defaultdict(list)
    for call in calls:
        if not start <= call.offered_at < end:
            continue
        if by in ("agent", "both") and call.agent_id is None:
            continue
        if by != "total" and call.queue is None and by != "agent":
            continue
        key = (interval_start(call.offered_at, interval_minutes, zone),
               call.queue if by in ("queue", "both") else None,
               call.agent_id if by in ("agent", "both") else None)
        calls_by_key[key].append(call)
    spans_by_key: dict[tuple[float | None, str | None, str | None], list[tuple[AgentStateSpan, float]]] = \
        defaultdict(list)
    if by in ("agent", "total"):
        step = (interval_minutes or 0) * 60
        for span in spans:
            lo, hi = max(span.start, start), min(span.end, end)
            while lo < hi:
                bucket = interval_start(lo, interval_minutes, zone)
                upper = min(hi, bucket + step) if bucket is not None else hi
                key = (bucket, None, span.agent_id if by == "agent" else None)
                spans_by_key[key].append((span, upper - lo))
                lo = upper
    alerts_by_key: dict[tuple[float | None, str | None, str | None], dict[str, int]] = defaultdict(dict)
    for alert in alerts:
        if not start <= alert.at < end:
            continue
        if (by in ("queue", "both") and alert.queue is None) or (by in ("agent", "both") and alert.agent_id is None):
            continue
        key = (interval_start(alert.at, interval_minutes, zone), alert.queue if by in ("queue", "both") else None,
               alert.agent_id if by in ("agent", "both") else None)
        counts = alerts_by_key[key]
        counts[alert.kind] = counts.get(alert.kind, 0) + 1
    callbacks_by_key: dict[tuple[float | None, str | None, str | None], list[CallbackFact]] = defaultdict(list)
    if by in ("queue", "total"):
        for callback in callbacks:
            if start <= callback.requested_at < end:
                key = (interval_start(callback.requested_at, interval_minutes, zone),
                       callback.queue if by == "queue" else None, None)
                callbacks_by_key[key].append(callback)
    keys = set(calls_by_key) | set(spans_by_key) | set(alerts_by_key) | set(callbacks_by_key)
    rows = []
    for key in sorted(keys, key=lambda k: (k[0] or 0, k[1] or "", k[2] or "")):
        row = _row(key, calls_by_key.get(key, []), spans_by_key.get(key, []), standards)
        row.alerts = dict(alerts_by_key.get(key, {}))
        _count_callbacks(row, callbacks_by_key.get(key, []))
        rows.append(row)
    return rows


def _count_callbacks(row: KpiRow, callbacks: list[CallbackFact]) -> None:
    connected = [c.connect_seconds for c in callbacks if c.connect_seconds is not None]
    row.callback_offers = sum(1 for c in callbacks if c.offered)
    row.callback_accepted = sum(1 for c in callbacks if c.accepted)
    row.callback_connected = len(connected)
    row.callback_attempts = sum(c.attempts for c in callbacks)
    row.callback_avg_connect_seconds = round(sum(connected) / len(connected), 3) if connected else None


def _row(key: tuple[float | None, str | None, str | None], calls: list[CallFact],
         spans: list[tuple[AgentStateSpan, float]], standards: Standards) -> KpiRow:
    row = KpiRow(*key)
    queued = [c for c in calls if c.outcome != "ivr_only"]
    row.ivr_only = len(calls) - len(queued)
    row.offered = len(queued)
    answered = [c for c in queued if c.outcome == "answered"]
    row.answered = len(answered)
    row.short_abandons = sum(1 for c in queued if c.outcome == "abandoned"
                             and c.wait_seconds < standards.short_abandon_seconds)
    row.abandoned = sum(1 for c in queued if c.outcome == "abandoned") - row.short_abandons
    row.overflowed = sum(1 for c in queued if c.outcome == "overflowed")
    counted = row.offered - row.short_abandons
    row.answer_rate = _ratio(row.answered, counted)
    row.abandon_rate = _ratio(row.abandoned, counted)
    row.service_level = _ratio(sum(1 for c in answered if c.wait_seconds <= standards.service_level_seconds),
                               counted)
    row.asa = _mean([c.wait_seconds for c in answered])
    row.att = _mean([c.talk_seconds for c in answered])
    row.avg_hold = _mean([c.hold_seconds for c in answered])
    row.avg_acw = _mean([c.acw_seconds for c in answered])
    row.aht = _mean([c.talk_seconds + c.hold_seconds + c.acw_seconds for c in answered])
    row.transfer_rate = _ratio(sum(1 for c in answered if c.transfers), len(answered))
    row.one_stop_rate = _ratio(sum(1 for c in answered if not c.transfers and not c.callback_requested),
                               len(answered))
    row.callbacks_requested = sum(1 for c in calls if c.callback_requested)
    row.callbacks_completed = sum(1 for c in calls if c.callback_completed)
    scores = [c.survey_score for c in calls if c.survey_score is not None]
    row.surveys = len(scores)
    row.survey_avg = _mean([float(s) for s in scores])
    for score in scores:
        row.survey_distribution[str(score)] = row.survey_distribution.get(str(score), 0) + 1
    row.complaint_rate = _ratio(sum(1 for c in queued if c.complaint), counted)
    row.breaches = {
        "talk": sum(1 for c in answered if c.talk_seconds > standards.max_talk_seconds),
        "acw": sum(1 for c in answered if c.acw_seconds > standards.max_acw_seconds),
        "hold": sum(1 for c in answered if c.hold_seconds > standards.max_hold_seconds),
        "wait": sum(1 for c in queued if c.wait_seconds > standards.max_wait_seconds),
    }
    busy = 0.0
    for span, seconds in spans:
        row.online += seconds
        if span.state == "ready":
            row.ready += seconds
        elif span.state == "not_ready":
            reason = span.reason or "unspecified"
            row.not_ready_by_reason[reason] = round(row.not_ready_by_reason.get(reason, 0.0) + seconds, 3)
        elif span.state in ("talking", "on_hold", "acw"):
            busy += seconds
    row.online, row.ready = round(row.online, 3), round(row.ready, 3)
    row.occupancy = _ratio(busy, busy + row.ready)
    return row
