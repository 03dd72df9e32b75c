"""Schedules and adherence, pure: CSV import, nested activities, real-time adherence with its grace, the day's share."""

from __future__ import annotations

from datetime import datetime

import pytest

from controller.plugins.wfm.schedules import (
    ScheduleError,
    Shift,
    StateSpan,
    adherence_now,
    adherence_share,
    check,
    parse_csv,
    scheduled_activity,
)

NINE = datetime(2026, 11, 26, 9, 0).timestamp()
HOUR = 3600.0
DAY = [Shift("1001", NINE, NINE + 8 * HOUR, "work"), Shift("1001", NINE + 3 * HOUR, NINE + 4 * HOUR, "meal")]


def test_a_csv_schedule_is_read_and_a_bad_row_refuses_it_all() -> None:
    shifts = parse_csv("agent_id,start,end,activity\n1001,2026-11-26 09:00,2026-11-26 17:00,work\n"
                       f"1002,{NINE},{NINE + HOUR},\n")
    assert shifts == [Shift("1001", NINE, NINE + 8 * HOUR, "work"), Shift("1002", NINE, NINE + HOUR, "work")]
    for text, problem in [("agent,start\n", "missing agent_id, end"),
                          ("agent_id,start,end\n1001,09:00 tomorrow,2026-11-26 17:00\n", "row 1: '09:00 tomorrow'"),
                          ("agent_id,start,end,activity\n1001,2026-11-26 09:00,2026-11-26 17:00,nap\n",
                           "row 1: activity"),
                          ("agent_id,start,end\n1001,2026-11-26 17:00,2026-11-26 09:00\n", "after the start"),
                          ("agent_id,start,end\n1001,2026-11-26 09:00,2026-11-28 09:00\n", "at most 24 hours")]:
        with pytest.raises(ScheduleError, match=problem):
            parse_csv(text)
    with pytest.raises(ScheduleError, match="row 2: no agent '9999'"):
        check([DAY[0], Shift("9999", NINE, NINE + HOUR)], known_agent={"1001"})


def test_the_shortest_covering_shift_is_the_activity() -> None:
    assert scheduled_activity(DAY, NINE + HOUR) == DAY[0]
    assert scheduled_activity(DAY, NINE + 3.5 * HOUR) == DAY[1]
    assert scheduled_activity(DAY, NINE + 8 * HOUR) is None  # the end is not in the shift


@pytest.mark.parametrize(("moment", "state", "since", "expected"), [
    (NINE + HOUR, "ready", NINE - 60, "in"),
    (NINE + HOUR, "talking", NINE + HOUR - 5, "in"),
    (NINE + HOUR, "acw", NINE + HOUR - 5, "in"),
    (NINE + HOUR, "logged_out", NINE - 600, "out"),          # on shift for an hour, never logged in
    (NINE + 120, "logged_out", NINE - 600, "pending"),       # two minutes late: within the 5-minute grace
    (NINE + HOUR, "not_ready", NINE + HOUR - 400, "out"),
    (NINE + HOUR, "not_ready", NINE + HOUR - 100, "pending"),
    (NINE + 3.5 * HOUR, "not_ready", NINE + 3 * HOUR, "in"),   # at lunch and not ready: as scheduled
    (NINE + 3.5 * HOUR, "ready", NINE + 2 * HOUR, "out"),      # taking calls through lunch
    (NINE + 9 * HOUR, "logged_out", NINE + 8 * HOUR, "in"),    # after the shift
    (NINE + 9 * HOUR, "ready", NINE + 7 * HOUR, "out"),        # still on the phones an hour after it
])
def test_real_time_adherence(moment: float, state: str, since: float, expected: str) -> None:
    result = adherence_now("1001", DAY, state=state, state_since=since, now=moment, grace_seconds=300)
    assert result.status == expected
    assert (result.since is None) == (expected == "in")


def test_an_agent_without_a_schedule_is_not_judged() -> None:
    result = adherence_now("1002", [], state="ready", state_since=NINE, now=NINE + HOUR, grace_seconds=300)
    assert result.status == "unscheduled" and result.as_dict()["scheduled"] == "off"


def test_the_day_s_adherence_share() -> None:
    # Logged in 09:10 (ten minutes late), ready until 12:00, not ready through lunch (12–13), back on the phones
    # until 16:30 (half an hour early out): 8 h scheduled, 7 h 20 min in adherence.
    spans = [StateSpan("ready", NINE + 600, NINE + 3 * HOUR),
             StateSpan("not_ready", NINE + 3 * HOUR, NINE + 4 * HOUR),
             StateSpan("talking", NINE + 4 * HOUR, NINE + 5 * HOUR),
             StateSpan("ready", NINE + 5 * HOUR, NINE + 7.5 * HOUR)]
    scheduled, adhered = adherence_share(DAY, spans, NINE - HOUR, NINE + 10 * HOUR)
    assert scheduled == 8 * HOUR
    assert adhered == 8 * HOUR - 600 - 1800
