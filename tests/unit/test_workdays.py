"""Callbacks' due times on the Chinese calendar (holidays library), with a fake clock."""

from __future__ import annotations

import datetime

import pytest

from controller.workdays import due_time, is_working_day, next_business_time

HOURS = "09:00-18:00"


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def local(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).isoformat(timespec="minutes")


def test_friday_evening_before_national_day_is_due_on_the_make_up_sunday() -> None:
    # 2025: National Day 1-8 October; Sunday 28 September and Saturday 11 October are worked (调休).
    friday_evening = at("2025-09-26T19:30")
    assert local(due_time(friday_evening, "next_morning", HOURS)) == "2025-09-28T09:00"
    assert local(due_time(friday_evening, "asap", HOURS)) == "2025-09-28T09:00"


def test_the_evening_before_the_holiday_is_due_after_it_and_a_make_up_saturday_counts() -> None:
    assert local(due_time(at("2025-09-30T20:00"), "next_morning", HOURS)) == "2025-10-09T09:00"
    assert local(due_time(at("2025-10-10T18:30"), "next_morning", HOURS)) == "2025-10-11T09:00"  # a Saturday
    assert is_working_day(datetime.date(2025, 10, 11)) and not is_working_day(datetime.date(2025, 10, 4))


def test_an_ordinary_weekend_is_skipped_and_a_time_inside_hours_is_kept() -> None:
    assert local(due_time(at("2025-11-14T19:00"), "next_morning", HOURS)) == "2025-11-17T09:00"  # Fri -> Mon
    assert local(due_time(at("2025-11-12T10:15"), "asap", HOURS)) == "2025-11-12T10:15"
    assert local(due_time(at("2025-11-12T07:00"), "asap", HOURS)) == "2025-11-12T09:00"
    # An agent's "call back 2025-10-03 10:00" falls in the holiday: the next business time instead.
    assert local(due_time(at("2025-09-30T12:00"), "2025-10-03T10:00", HOURS)) == "2025-10-09T09:00"


def test_bad_hours_and_times_are_refused() -> None:
    with pytest.raises(ValueError):
        next_business_time(datetime.datetime(2025, 11, 12, 10), "18:00-09:00")
    for when in ("9999-12-31T23:00", "tomorrow", ""):
        with pytest.raises(ValueError):
            due_time(at("2025-11-12T10:15"), when, HOURS)
