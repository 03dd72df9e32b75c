"""A campaign's settings and its compliance rules (pure: the clock is an argument).

- **Calling hours**: between `start_date` and `end_date` (inclusive), within the daily `hours` in the
  callee's local time: the contact's time zone (given in the CSV, or derived from the number); a number
  whose region spans several zones may be called only when the hours hold in every one of them; a
  number with none uses the campaign's `timezone`. No calls on the callee's public holidays (the
  `holidays` calendar of the number's region) unless `allow_holidays`.
- **Attempts**: at most `max_attempts` per contact; after an attempt that did not reach the customer the
  next one is due `retry_seconds[outcome]` later (and not before the next calling time).
- **Do not call**: checked at dial time against the global list and the campaign's own; a customer's
  "do not call me" disposition adds their number to the campaign's list.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from controller.holiday_calendar import holiday_name
from controller.outbound.pacing import MODES, Mode, PacingSettings

__all__ = ["AMD_HANDLING", "DISPOSITIONS", "OUTCOMES", "REACHED_OUTCOMES", "CampaignSettings", "calling_refusal",
           "next_calling_time", "parse_settings", "retry_due"]

#: What an attempt can end as, before an agent's disposition (`interrupted`: in flight when the controller stopped).
OUTCOMES = ("answered", "busy", "no_answer", "rejected", "failed", "machine", "abandoned", "completed",
            "transferred", "hung_up", "machine_message", "skipped", "interrupted")
#: Outcomes that reached the customer (or their machine, with a message left): the contact is done.
#: IVR-only: `completed` (the flow ran to its end), `transferred` (pressed for a queue), `hung_up`.
REACHED_OUTCOMES = ("answered", "completed", "transferred", "hung_up", "machine_message")
#: What an answering machine gets (`amd`): no detection, hang up (retried as `machine`), a message after
#: the beep (`amd_message`), or the agent as if a person answered.
AMD_HANDLING = ("off", "hangup", "message", "agent")
#: Retryable outcomes and dispositions, with their default delay (seconds).
DEFAULT_RETRY_SECONDS: dict[str, float] = {"busy": 600.0, "no_answer": 1800.0, "rejected": 3600.0,
                                           "failed": 3600.0, "machine": 3600.0, "abandoned": 1800.0,
                                           "callback": 3600.0}
#: An agent's dispositions: final ones, `callback` (again later), `do_not_call` (added to the list).
DISPOSITIONS = ("done", "not_interested", "wrong_number", "callback", "do_not_call")
#: Days looked ahead for the next calling time.
MAX_DAYS_AHEAD = 60


@dataclass(frozen=True)
class CampaignSettings:
    name: str
    mode: Mode = "progressive"
    agents: tuple[str, ...] = ()  # who works it
    caller_id: str = ""
    flow: str = ""  # ivr mode: what the customer hears
    region: str = "CN"  # for numbers without a leading +
    timezone: str = "Asia/Shanghai"  # for numbers whose zone is unknown
    start_date: str = ""  # ISO dates, inclusive; "" for no bound
    end_date: str = ""
    hours: str = "09:00-21:00"  # daily, the callee's local time
    allow_holidays: bool = False
    ring_seconds: float = 30.0  # ≈ 6 rings
    max_attempts: int = 3
    retry_seconds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RETRY_SECONDS))
    abandon_cap: float = 0.03
    wrapup_seconds: float = 5.0
    ivr_lines: int = 10  # ivr mode: customers dialled or in the flow at a time
    amd: str = "off"  # answering-machine detection: one of AMD_HANDLING
    amd_message: str = ""  # amd "message": said (text to speech) after the machine's beep

    def pacing(self) -> PacingSettings:
        return PacingSettings(mode=self.mode, abandon_cap=self.abandon_cap, ivr_lines=self.ivr_lines)

    def hours_range(self) -> tuple[datetime.time, datetime.time]:
        """The daily window, its end excluded; `24:00` ends it at midnight (`00:00-24:00`: all day)."""
        start, _, end = self.hours.partition("-")
        last = datetime.time.max if end.strip() == "24:00" else datetime.time.fromisoformat(end.strip())
        return datetime.time.fromisoformat(start.strip()), last

    def dates(self) -> tuple[datetime.date | None, datetime.date | None]:
        return (datetime.date.fromisoformat(self.start_date) if self.start_date else None,
                datetime.date.fromisoformat(self.end_date) if self.end_date else None)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["agents"] = list(self.agents)
        return data


def parse_settings(data: Mapping[str, Any]) -> CampaignSettings:
    """Settings from an API body or a stored row; ValueError naming what is wrong."""
    known = {f.name for f in fields(CampaignSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown campaign settings: {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64 or not name.replace("-", "").replace(
            "_", "").isalnum():
        raise ValueError("name: 1 to 64 letters, digits, - or _")
    values = dict(data)
    values["agents"] = tuple(data.get("agents", ()))
    retry = dict(DEFAULT_RETRY_SECONDS)
    retry.update({str(k): float(v) for k, v in (data.get("retry_seconds") or {}).items()})
    values["retry_seconds"] = retry
    try:
        settings = CampaignSettings(**values)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    _check(settings)
    return settings


def _check(settings: CampaignSettings) -> None:
    if settings.mode not in MODES:
        raise ValueError(f"mode: one of {', '.join(MODES)}")
    if settings.mode == "ivr" and not settings.flow:
        raise ValueError("flow: an IVR-only campaign needs the flow its customers hear")
    if settings.mode != "ivr" and not settings.agents:
        raise ValueError("agents: who works the campaign")
    try:
        start, end = settings.hours_range()
        first, last = settings.dates()
        zoneinfo.ZoneInfo(settings.timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
        raise ValueError(f"hours HH:MM-HH:MM, dates YYYY-MM-DD, timezone an IANA name: {exc}") from exc
    if end <= start:
        raise ValueError(f"hours {settings.hours!r} end before they start")
    if first and last and last < first:
        raise ValueError("end_date is before start_date")
    if not 5 <= settings.ring_seconds <= 120:
        raise ValueError("ring_seconds: 5 to 120 (30 s is about 6 rings)")
    if not 1 <= settings.max_attempts <= 20:
        raise ValueError("max_attempts: 1 to 20")
    bad = [k for k, v in settings.retry_seconds.items() if k not in DEFAULT_RETRY_SECONDS or v < 0]
    if bad:
        raise ValueError(f"retry_seconds: outcomes {', '.join(DEFAULT_RETRY_SECONDS)} with seconds >= 0 (not {bad})")
    if not 0 < settings.abandon_cap < 1:
        raise ValueError("abandon_cap: between 0 and 1 (0.03 is 3 %)")
    if not 1 <= settings.ivr_lines <= 500:
        raise ValueError("ivr_lines: 1 to 500")
    if settings.amd not in AMD_HANDLING:
        raise ValueError(f"amd: one of {', '.join(AMD_HANDLING)}")
    if settings.amd == "message" and not settings.amd_message.strip():
        raise ValueError("amd_message: the message left on answering machines (amd: message)")


def _zones(settings: CampaignSettings, zones: Sequence[str]) -> list[zoneinfo.ZoneInfo]:
    return [zoneinfo.ZoneInfo(z) for z in (zones or (settings.timezone,))]


def calling_refusal(settings: CampaignSettings, now: float, zones: Sequence[str], region: str) -> str | None:
    """Why the contact may not be called at `now` (None: they may)."""
    start, end = settings.hours_range()
    first, last = settings.dates()
    for zone in _zones(settings, zones):
        local = datetime.datetime.fromtimestamp(now, zone)
        if (first and local.date() < first) or (last and local.date() > last):
            return "outside_dates"
        if not start <= local.time() < end:
            return "outside_hours"
        if not settings.allow_holidays and holiday_name(local.date(), region or settings.region):
            return "holiday"
    return None


def next_calling_time(settings: CampaignSettings, after: float, zones: Sequence[str], region: str) -> float | None:
    """The first moment at or after `after` the contact may be called (None: not within the campaign's dates
    or MAX_DAYS_AHEAD)."""
    when = after
    for _ in range(MAX_DAYS_AHEAD * 4):
        reason = calling_refusal(settings, when, zones, region)
        if reason is None:
            return when
        if reason == "outside_dates":
            first, _ = settings.dates()
            if first is None or datetime.datetime.fromtimestamp(when, _zones(settings, zones)[0]).date() >= first:
                return None  # past the end date
        when = _next_opening(settings, when, zones)
    return None


def _next_opening(settings: CampaignSettings, when: float, zones: Sequence[str]) -> float:
    """The next moment the daily hours open in the latest of the zones (or the next day's opening)."""
    start, _ = settings.hours_range()
    openings = []
    for zone in _zones(settings, zones):
        local = datetime.datetime.fromtimestamp(when, zone)
        opening = datetime.datetime.combine(local.date(), start, zone)
        if opening.timestamp() <= when:
            opening = datetime.datetime.combine(local.date() + datetime.timedelta(days=1), start, zone)
        openings.append(opening.timestamp())
    return max(openings)


def retry_due(settings: CampaignSettings, now: float, outcome: str, attempts: int) -> float | None:
    """When the next attempt is due after `outcome`, or None: no attempt left (or not a retryable outcome)."""
    if outcome not in settings.retry_seconds or attempts >= settings.max_attempts:
        return None
    return now + settings.retry_seconds[outcome]
