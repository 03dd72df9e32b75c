"""Public holidays per country, from the maintained `holidays` library (pure, cached per country and year).

Shared by whatever decides by the calendar: outbound campaigns skip the callee's holidays; callbacks'
working days (China's make-up workdays, 调休) come from the same calendars.
"""

from __future__ import annotations

import datetime
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def country_calendar(country: str, year: int) -> holidays.HolidayBase:
    """The calendar of `country` (ISO 3166 alpha-2) for `year` and the years around it; KeyError-free:
    NotImplementedError from the library for a country it does not know."""
    return holidays.country_holidays(country, years=[year - 1, year, year + 1])


def holiday_name(day: datetime.date, country: str) -> str | None:
    """The public holiday `day` is in `country`, or None (also None for a country the library lacks)."""
    try:
        calendar = country_calendar(country.upper(), day.year)
    except NotImplementedError:
        return None
    name = calendar.get(day)
    return str(name) if name else None


def is_working_day(day: datetime.date, country: str = "CN") -> bool:
    """A weekday that is not a public holiday, or a make-up workday on a weekend."""
    return bool(country_calendar(country.upper(), day.year).is_working_day(day))
