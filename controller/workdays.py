"""Working days and business hours: callbacks' and follow-up tasks' due times (pure: no I/O, the clock is an
argument).

The Chinese calendar comes from the `holidays` library (`controller.holiday_calendar`): public holidays
(春节, 国庆 …) are days off, and the make-up workdays (调休) it lists — a Saturday or Sunday worked in
exchange — are working days.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from controller.holiday_calendar import is_working_day

#: Days looked ahead for a working day (the longest break, Spring Festival, is 9 days).
MAX_DAYS_AHEAD = 30


def parse_hours(hours: str) -> tuple[datetime.time, datetime.time]:
    """"09:00-18:00" -> (09:00, 18:00); ValueError when it is not that form or ends before it starts."""
    start_text, _, end_text = hours.partition("-")
    start, end = datetime.time.fromisoformat(start_text.strip()), datetime.time.fromisoformat(end_text.strip())
    if end <= start:
        raise ValueError(f"business hours {hours!r} end before they start")
    return start, end


def next_business_time(when: datetime.datetime, hours: str) -> datetime.datetime:
    """The first moment at or after `when` inside business hours on a working day (local, naive)."""
    start, end = parse_hours(hours)
    day = when.date()
    for _ in range(MAX_DAYS_AHEAD):
        if is_working_day(day):
            opens, closes = datetime.datetime.combine(day, start), datetime.datetime.combine(day, end)
            if when < closes:
                return max(when, opens)
        day += datetime.timedelta(days=1)
    raise ValueError(f"no working day within {MAX_DAYS_AHEAD} days of {when:%Y-%m-%d}")


def next_working_morning(when: datetime.datetime, hours: str) -> datetime.datetime:
    """"Tomorrow morning": the opening of business hours on the first working day after `when`'s day."""
    start, _ = parse_hours(hours)
    day = when.date() + datetime.timedelta(days=1)
    for _ in range(MAX_DAYS_AHEAD):
        if is_working_day(day):
            return datetime.datetime.combine(day, start)
        day += datetime.timedelta(days=1)
    raise ValueError(f"no working day within {MAX_DAYS_AHEAD} days of {when:%Y-%m-%d}")


def due_time(now: float, when: str, hours: str) -> float:
    """A callback's due time (epoch seconds) for the caller's or agent's choice `when`:
    "asap" (now, or the next opening), "next_morning" (the next working day's opening), or an ISO
    local time "2026-10-09T10:00" (moved to the next business time if outside)."""
    try:
        return _due_time(now, when, hours)
    except OverflowError as exc:  # a date past year 9999
        raise ValueError(f"no time {when!r} can be due") from exc


def _due_time(now: float, when: str, hours: str) -> float:
    current = datetime.datetime.fromtimestamp(now)
    if when == "asap":
        chosen = next_business_time(current, hours)
    elif when == "next_morning":
        chosen = next_working_morning(current, hours)
    else:
        asked = datetime.datetime.fromisoformat(when)
        if asked.tzinfo is not None:
            asked = asked.astimezone().replace(tzinfo=None)
        chosen = next_business_time(max(asked, current), hours)
    return chosen.timestamp()


def working_days_later(moment: float, days: int, timezone: str) -> float:
    """The same time of day `days` working days after `moment` (epoch seconds) in `timezone`: the standard's
    "respond within 1 working day". A moment on a day off counts from that day's time on the next working day."""
    zone = ZoneInfo(timezone)
    local = datetime.datetime.fromtimestamp(moment, zone)
    day = local.date()
    remaining = days
    while remaining > 0 or not is_working_day(day):
        day += datetime.timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return datetime.datetime.combine(day, local.time().replace(tzinfo=None), zone).timestamp()
