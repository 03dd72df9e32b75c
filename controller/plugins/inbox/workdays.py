"""Working days of the Chinese calendar (holidays and make-up workdays, 调休) from the `holidays` library."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=8)
def _calendar(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("CN", years=range(year - 1, year + 2))


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday unless a public holiday or a day off, plus the weekend days made workdays."""
    return bool(_calendar(day.year).is_working_day(day))


def working_days_later(moment: float, days: int, timezone: str) -> float:
    """The same time of day `days` working days after `moment` (epoch seconds) in `timezone`: the standard's
    "respond within 1 working day". A moment on a day off counts from that day's time on the next working day."""
    zone = ZoneInfo(timezone)
    local = dt.datetime.fromtimestamp(moment, zone)
    day = local.date()
    remaining = days
    while remaining > 0 or not is_working_day(day):
        day += dt.timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    due = dt.datetime.combine(day, local.time().replace(tzinfo=None), zone)
    return due.timestamp()
