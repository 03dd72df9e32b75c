"""KPIs, the live service level and Erlang staffing at their boundaries: values exactly at a
threshold, figures where rounding choices differ, and time zones whose offset is not whole hours.

Each test names the bug it guards (issue 21: the older tests' figures happened to agree with it).
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from controller.acd.engine import AcdEngine
from controller.acd.model import AgentSettings, QueueSettings
from controller.clock import FakeClock
from controller.reports import erlang
from controller.reports.kpis import (
    AgentStateSpan,
    AlertFact,
    CallFact,
    KpiRow,
    Standards,
    compute_report,
    interval_start,
)

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 24, 10, 0, tzinfo=TZ).timestamp()
END = START + 3600


def answered(call_id: str, wait: float, **extra: float) -> CallFact:
    return CallFact(call_id, "q", "A", START + 60, "answered", wait, **extra)  # type: ignore[arg-type]


def abandoned(call_id: str, wait: float) -> CallFact:
    return CallFact(call_id, "q", None, START + 60, "abandoned", wait)


def row(calls: list[CallFact], standards: Standards | None = None) -> dict[str, object]:
    (only,) = compute_report(calls, [], start=START, end=END, standards=standards or Standards())
    return only.as_dict()


def test_report_service_level_counts_an_answer_at_exactly_the_threshold() -> None:
    """Guards: the report's service level `<=` made `<` (or the threshold moved)."""
    standards = Standards(service_level_seconds=20)
    assert row([answered("c1", 20.0), answered("c2", 20.5)], standards)["service_level"] == 0.5
    assert row([answered("c1", 19.9), answered("c2", 20.0)], standards)["service_level"] == 1.0


def test_a_short_abandon_is_strictly_shorter_than_the_threshold() -> None:
    """Guards: short abandons `<` made `<=`: a caller who waited exactly the threshold is a real abandon."""
    result = row([abandoned("c1", 5.0), abandoned("c2", 4.9), answered("c3", 3.0)],
                 Standards(short_abandon_seconds=5))
    assert (result["offered"], result["short_abandons"], result["abandoned"]) == (3, 1, 1)
    assert result["abandon_rate"] == 0.5  # 1 / (3 − 1)
    assert result["answer_rate"] == 0.5


def test_breaches_are_strictly_over_the_limit() -> None:
    at_limit = answered("c1", 600.0, talk_seconds=180.0, acw_seconds=60.0, hold_seconds=30.0)
    over = answered("c2", 600.5, talk_seconds=180.5, acw_seconds=60.5, hold_seconds=30.5)
    assert row([at_limit])["breaches"] == {"talk": 0, "acw": 0, "hold": 0, "wait": 0}
    assert row([at_limit, over])["breaches"] == {"talk": 1, "acw": 1, "hold": 1, "wait": 1}


def test_live_service_level_counts_an_answer_at_exactly_the_threshold() -> None:
    """Guards: the engine's live service level `<=` made `<` (queue stats and the wallboard)."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", service_level_seconds=20, announce_interval=0, ring_timeout=60)],
                    [AgentSettings("a1", "A", "1", "8001", queues={"q": 0})], clock)
    acd.login("a1", ready=False)
    acd.enqueue("on-time", "q")
    clock.advance(20)
    acd.ready("a1")
    acd.answered("on-time", "a1")
    assert (acd.queue_stats("q").answered_within_sl, acd.queue_stats("q").service_level) == (1, 1.0)
    acd.call_ended("a1")
    acd.end_acw("a1")
    acd.not_ready("a1", "meal")
    acd.enqueue("late", "q")
    clock.advance(20.5)
    acd.ready("a1")
    acd.answered("late", "a1")
    stats = acd.queue_stats("q")
    assert (stats.answered, stats.answered_within_sl, stats.service_level) == (2, 1, 0.5)


def test_scheduled_staff_rounds_up() -> None:
    """Guards: staff to schedule rounded to the nearest agent (`round`) instead of up (`ceil`):
    10 agents after 30 % shrinkage need 14.3 scheduled, which is 15 people, not 14."""
    assert erlang.scheduled(10, 0.3) == 15
    assert erlang.scheduled(21, 0.3) == 30  # exactly 30 (21 / (1 - 0.3) is 30.000000000000004 in floating point)
    assert erlang.scheduled(9, 0.25) == 12
    assert erlang.scheduled(9, 0.0) == 9
    with pytest.raises(ValueError, match="shrinkage"):
        erlang.scheduled(9, 1.0)
    with pytest.raises(ValueError, match="shrinkage"):
        erlang.scheduled(9, -0.1)


def test_hourly_intervals_follow_a_time_zone_with_a_non_whole_hour_offset() -> None:
    """Guards: the interval floored in the host's zone (UTC here) instead of the report's: with
    Asia/Kathmandu (+05:45) an hour starts at :00 local, which is :15 UTC."""
    kathmandu = ZoneInfo("Asia/Kathmandu")
    moment = datetime(2026, 11, 24, 10, 50, tzinfo=kathmandu).timestamp()
    assert interval_start(moment, 60, kathmandu) == datetime(2026, 11, 24, 10, 0, tzinfo=kathmandu).timestamp()
    assert interval_start(moment, 15, kathmandu) == datetime(2026, 11, 24, 10, 45, tzinfo=kathmandu).timestamp()
    assert interval_start(moment, None, kathmandu) is None
    kolkata = ZoneInfo("Asia/Kolkata")  # +05:30: a second zone, so the check holds on a host in either of them
    in_kolkata = datetime(2026, 11, 24, 10, 50, tzinfo=kolkata).timestamp()
    assert interval_start(in_kolkata, 60, kolkata) == datetime(2026, 11, 24, 10, 0, tzinfo=kolkata).timestamp()
    rows = compute_report([CallFact("c1", "q", None, moment, "answered", 1)], [], start=moment - 7200,
                          end=moment + 7200, interval_minutes=60, tz="Asia/Kathmandu")
    assert [r.interval_start for r in rows] == [datetime(2026, 11, 24, 10, 0, tzinfo=kathmandu).timestamp()]


# -- a crafted hour: every filter, boundary and figure of every row -------------------------------------

def hhmm(text: str) -> float:
    hour, minute = map(int, text.split(":"))
    return datetime(2026, 11, 24, hour, minute, tzinfo=TZ).timestamp()


HOUR_CALLS = [
    CallFact("k1", "q", "A", hhmm("10:00"), "answered", 20, 100, 10, 20, survey_score=4),  # at the start: in
    CallFact("k2", "q", None, hhmm("10:29"), "abandoned", 5),  # exactly the short-abandon limit: a real abandon
    CallFact("k3", "q", "B", hhmm("10:30"), "answered", 21, 200, 0, 30, transfers=2, callback_requested=True,
             survey_score=2, complaint=True),
    CallFact("k4", None, None, hhmm("10:40"), "ivr_only", 0, callback_requested=True, callback_completed=True,
             survey_score=5),
    CallFact("k5", "q", None, hhmm("11:00"), "abandoned", 50),  # at the end: out
    CallFact("k6", None, "A", hhmm("10:50"), "answered", 3, 60),  # an agent's call outside any queue
    CallFact("k7", "q", None, hhmm("10:10"), "overflowed", 700),
]
HOUR_SPANS = [
    AgentStateSpan("A", "ready", None, hhmm("09:50"), hhmm("10:20")),
    AgentStateSpan("A", "talking", None, hhmm("10:20"), hhmm("10:40")),
    AgentStateSpan("A", "acw", None, hhmm("10:40"), hhmm("10:45")),
    AgentStateSpan("A", "not_ready", None, hhmm("10:45"), hhmm("10:50")),
    AgentStateSpan("A", "ready", None, hhmm("10:50"), hhmm("11:10")),
    AgentStateSpan("B", "not_ready", "meal", hhmm("10:00"), hhmm("10:15")),
]
HOUR_ALERTS = [AlertFact(hhmm("10:00"), "wait", "q", None), AlertFact(hhmm("10:30"), "hold", None, "A"),
               AlertFact(hhmm("11:00"), "talk", "q", "A")]  # the last one is at the end: out


def expected(interval: str | None, queue: str | None, agent: str | None, **figures: object) -> dict[str, object]:
    row = KpiRow(hhmm(interval) if interval else None, queue, agent).as_dict()
    for name, value in figures.items():
        if name in ("survey_distribution", "breaches"):
            row[name] = {**row[name], **value}  # type: ignore[dict-item]
        else:
            row[name] = value
    return row


def hour(by: str, interval: int | None) -> list[dict[str, object]]:
    rows = compute_report(HOUR_CALLS, HOUR_SPANS, start=hhmm("10:00"), end=hhmm("11:00"), interval_minutes=interval,
                          by=by, alerts=HOUR_ALERTS)  # type: ignore[arg-type]
    return [r.as_dict() for r in rows]


FIRST_HALF_CALLS: dict[str, object] = dict(
    offered=3, answered=1, abandoned=1, overflowed=1, answer_rate=0.3333, abandon_rate=0.3333, service_level=0.3333,
    asa=20.0, att=100.0, avg_hold=10.0, avg_acw=20.0, aht=130.0, transfer_rate=0.0, one_stop_rate=1.0, surveys=1,
    survey_avg=4.0, survey_distribution={"4": 1}, complaint_rate=0.0, breaches={"wait": 1})


def test_rows_by_queue_in_half_hours() -> None:
    assert hour("queue", 30) == [
        expected("10:00", "q", None, **FIRST_HALF_CALLS, alerts={"wait": 1}),
        expected("10:30", "q", None, offered=1, answered=1, answer_rate=1.0, abandon_rate=0.0, service_level=0.0,
                 asa=21.0, att=200.0, avg_hold=0.0, avg_acw=30.0, aht=230.0, transfer_rate=1.0, one_stop_rate=0.0,
                 callbacks_requested=1, surveys=1, survey_avg=2.0, survey_distribution={"2": 1}, complaint_rate=1.0,
                 breaches={"talk": 1}),
    ]


def test_rows_by_agent_for_the_whole_period() -> None:
    assert hour("agent", None) == [
        expected(None, None, "A", offered=2, answered=2, answer_rate=1.0, abandon_rate=0.0, service_level=1.0,
                 asa=11.5, att=80.0, avg_hold=5.0, avg_acw=10.0, aht=95.0, transfer_rate=0.0, one_stop_rate=1.0,
                 surveys=1, survey_avg=4.0, survey_distribution={"4": 1}, complaint_rate=0.0, occupancy=0.4545,
                 online=3600.0, ready=1800.0, not_ready_by_reason={"unspecified": 300.0}, alerts={"hold": 1}),
        expected(None, None, "B", offered=1, answered=1, answer_rate=1.0, abandon_rate=0.0, service_level=0.0,
                 asa=21.0, att=200.0, avg_hold=0.0, avg_acw=30.0, aht=230.0, transfer_rate=1.0, one_stop_rate=0.0,
                 callbacks_requested=1, surveys=1, survey_avg=2.0, survey_distribution={"2": 1}, complaint_rate=1.0,
                 breaches={"talk": 1}, online=900.0, not_ready_by_reason={"meal": 900.0}),
    ]


def test_total_rows_in_half_hours_split_agent_time_at_the_boundary() -> None:
    assert hour("total", 30) == [
        expected("10:00", None, None, **FIRST_HALF_CALLS, online=2700.0, ready=1200.0,
                 not_ready_by_reason={"meal": 900.0}, occupancy=0.3333, alerts={"wait": 1}),
        expected("10:30", None, None, ivr_only=1, offered=2, answered=2, answer_rate=1.0, abandon_rate=0.0,
                 service_level=0.5, asa=12.0, att=130.0, avg_hold=0.0, avg_acw=15.0, aht=145.0, transfer_rate=0.5,
                 one_stop_rate=0.5, callbacks_requested=2, callbacks_completed=1, surveys=2, survey_avg=3.5,
                 survey_distribution={"2": 1, "5": 1}, complaint_rate=0.5, breaches={"talk": 1}, online=1800.0,
                 ready=600.0, not_ready_by_reason={"unspecified": 300.0}, occupancy=0.6, alerts={"hold": 1}),
    ]


def test_rows_by_queue_and_agent_leave_out_calls_without_either() -> None:
    rows = hour("both", None)
    assert [(r["queue"], r["agent_id"], r["offered"]) for r in rows] == [("q", "A", 1), ("q", "B", 1)]
    assert all(r["online"] == 0.0 and r["alerts"] == {} for r in rows)  # no agent time or alerts without both keys
    assert [r["interval_start"] for r in hour("queue", 60)] == [hhmm("10:00")]
    assert [r["interval_start"] for r in hour("queue", 15)] == [hhmm("10:00"), hhmm("10:15"), hhmm("10:30")]


# -- Erlang C at its edges ----------------------------------------------------------------------------

def test_traffic_and_its_bad_input() -> None:
    assert erlang.traffic(100, 180, 30) == 10.0
    assert erlang.traffic(0, 180, 30) == 0.0  # no calls is valid
    for calls, aht, minutes in ((-1, 180, 30), (100, 0, 30), (100, 180, 0)):
        with pytest.raises(ValueError, match=r"^calls must be ≥ 0, AHT and the interval > 0$"):
            erlang.traffic(calls, aht, minutes)


def test_erlang_c_small_cases_worked_by_hand() -> None:
    assert erlang.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: the probability of waiting is the load
    assert erlang.erlang_c(2, 1.0) == pytest.approx(1 / 3)  # (A²/2!·2/(2−A)) / (1 + A + A²/2!·2/(2−A))
    assert erlang.erlang_c(3, 0.0) == 0.0
    assert erlang.erlang_c(3, 3.0) == 1.0  # as many erlangs as agents: everyone waits
    with pytest.raises(ValueError, match=r"^agents must be ≥ 1$"):
        erlang.erlang_c(0, 1.0)


def test_achieved_at_the_edges_and_the_rounded_dict() -> None:
    assert erlang.achieved(1, calls=0, aht_seconds=180) == erlang.Staffing(1, 0.0, 0.0, 1.0, 0.0, 0.0)
    assert erlang.achieved(7, calls=35, aht_seconds=360) == erlang.Staffing(7, 7.0, 1.0, 0.0, math.inf, 1.0)
    assert erlang.achieved(12, calls=100, aht_seconds=180).as_dict() == {
        "agents": 12, "traffic_erlangs": 10.0, "probability_of_waiting": 0.4494, "service_level": 0.6402,
        "asa_seconds": 40.44, "occupancy": 0.8333}
    assert erlang.achieved(2, calls=7, aht_seconds=100, answer_within_seconds=10).as_dict() == {
        # worked by hand: B(1) = 0.28, B(2) = 0.051633, C = 0.063307; SL = 1 − C·e^(−1.6111·10/100); ASA = C·100/1.6111
        "agents": 2, "traffic_erlangs": 0.3889, "probability_of_waiting": 0.0633, "service_level": 0.9461,
        "asa_seconds": 3.93, "occupancy": 0.1944}


def test_agents_needed_limits_and_their_boundaries() -> None:
    assert erlang.agents_needed(calls=0, aht_seconds=180).agents == 1
    assert erlang.agents_needed(calls=0, aht_seconds=180, target_asa_seconds=0).agents == 1  # 0 s ≤ 0 s
    assert erlang.agents_needed(calls=100, aht_seconds=180, max_occupancy=0.5).agents == 20  # exactly 50 %
    assert erlang.agents_needed(calls=100, aht_seconds=180, max_occupancy=1.0).agents == 14
    assert erlang.agents_needed(calls=100, aht_seconds=180, target_service_level=0.999).agents == 21  # 20: 99.88 %
    for target in (0.0, 1.0, 80.0):
        with pytest.raises(ValueError, match=r"^the target service level is a fraction between 0 and 1, e.g. 0.8$"):
            erlang.agents_needed(calls=100, aht_seconds=180, target_service_level=target)
    for occupancy in (0.0, 1.01):
        with pytest.raises(ValueError, match=r"^the maximum occupancy is a fraction between 0 and 1, e.g. 0.85$"):
            erlang.agents_needed(calls=100, aht_seconds=180, max_occupancy=occupancy)
    with pytest.raises(ValueError, match=r"^more than 10000 agents needed: check the calls, AHT and interval$"):
        erlang.agents_needed(calls=10_000_000, aht_seconds=180)


def test_agents_needed_passes_the_interval_and_answer_time_on() -> None:
    assert erlang.agents_needed(calls=200, aht_seconds=180, interval_minutes=60).agents == 14  # 10 erlangs
    assert erlang.agents_needed(calls=100, aht_seconds=180, answer_within_seconds=60).agents == 13
    # 13 agents reach 79.56 % within 20 s and 79.90 % within 21 s: a target between tells the default apart
    assert erlang.agents_needed(calls=100, aht_seconds=180, target_service_level=0.7973).agents == 14
    # a target exactly what 14 agents achieve is reached by 14
    exact = erlang.achieved(14, calls=100, aht_seconds=180).service_level
    assert erlang.agents_needed(calls=100, aht_seconds=180, target_service_level=exact).agents == 14
    # exactly the maximum number of agents is still an answer; one more is not
    assert erlang.agents_needed(calls=199_740, aht_seconds=180, interval_minutes=60).agents == erlang.MAX_AGENTS
    with pytest.raises(ValueError, match="more than 10000"):
        erlang.agents_needed(calls=199_741, aht_seconds=180, interval_minutes=60)


def test_short_handle_times_and_intervals_are_valid_and_shrinkage_errors_are_exact() -> None:
    assert erlang.traffic(60, 1, 1) == 1.0  # 60 one-second calls in one minute
    with pytest.raises(ValueError) as refused:
        erlang.scheduled(9, 1.0)
    assert str(refused.value) == "shrinkage is a fraction between 0 and 1, e.g. 0.3"


def test_report_details_means_surveys_fractions_and_on_hold() -> None:
    base = hhmm("10:00")
    calls = [answered("m1", 1), answered("m2", 2), answered("m3", 2),
             CallFact("s1", "q", None, base + 60, "ivr_only", 0, survey_score=4),
             CallFact("s2", "q", None, base + 60, "ivr_only", 0, survey_score=4),
             CallFact("s3", "q", None, base + 60, "ivr_only", 0, survey_score=9)]  # another scale: its own key
    (queue_row,) = compute_report(calls, [], start=START, end=END)  # by queue when not told
    assert queue_row.queue == "q" and queue_row.asa == 1.67  # 5 / 3, to two decimals
    assert queue_row.survey_distribution == {"1": 0, "2": 0, "3": 0, "4": 2, "5": 0, "9": 1}
    spans = [AgentStateSpan("A", "not_ready", "meal", base, base + 100.12345),
             AgentStateSpan("A", "on_hold", None, base + 200, base + 300),
             AgentStateSpan("A", "not_ready", "meal", base + 400, base + 400.5),
             AgentStateSpan("A", "ready", None, base + 500, base + 600.25049),
             AgentStateSpan("C", "ready", None, base + 500, base + 600)]  # C took no call: a row all the same
    rows = compute_report([], spans, start=START, end=END, by="agent",
                          alerts=[AlertFact(base + 1, "acw", None, "D"), AlertFact(base + 2, "acw", None, "D")])
    by_agent = {r.agent_id: r for r in rows}
    assert list(by_agent) == ["A", "C", "D"]
    a = by_agent["A"]
    assert (a.not_ready_by_reason, a.online, a.ready) == ({"meal": 100.623}, 300.874, 100.25)
    assert a.occupancy == 0.4994  # on hold is busy: 100 / (100 + 100.25)
    assert (by_agent["C"].online, by_agent["D"].alerts) == (100.0, {"acw": 2})


def test_report_alerts_by_queue_and_agent_and_after_an_early_one() -> None:
    alerts = [AlertFact(hhmm("09:00"), "wait", "q", "A"),  # before the period: skipped, the rest still counted
              AlertFact(hhmm("10:05"), "hold", "q", "A"), AlertFact(hhmm("10:06"), "hold", "q", "A")]
    rows = compute_report(HOUR_CALLS, [], start=hhmm("10:00"), end=hhmm("11:00"), by="both", alerts=alerts)
    assert {(r.queue, r.agent_id): r.alerts for r in rows} == {("q", "A"): {"hold": 2}, ("q", "B"): {}}


def test_report_rows_come_in_queue_order() -> None:
    calls = [CallFact(f"c-{name}", name, None, START + 60, "answered", 1) for name in ("d", "b", "a", "c")]
    assert [r.queue for r in compute_report(calls, [], start=START, end=END)] == ["a", "b", "c", "d"]


def test_agent_time_and_alerts_in_intervals_of_a_zone_with_a_non_whole_hour_offset() -> None:
    kathmandu = ZoneInfo("Asia/Kathmandu")
    ten = datetime(2026, 11, 24, 10, 0, tzinfo=kathmandu).timestamp()
    spans = [AgentStateSpan("A", "ready", None, ten + 600, ten + 4200)]  # 10:10–11:10 local
    rows = compute_report([], spans, start=ten, end=ten + 7200, interval_minutes=60, by="agent", tz="Asia/Kathmandu",
                          alerts=[AlertFact(ten + 3000, "acw", None, "A")])
    assert [(r.interval_start, r.ready, r.alerts) for r in rows] == [(ten, 3000.0, {"acw": 1}),
                                                                      (ten + 3600, 600.0, {})]
    assert interval_start(ten + 3000 + 37.25, 60, kathmandu) == ten  # seconds and fractions floored too


def test_report_refusals_name_what_is_expected() -> None:
    with pytest.raises(ValueError) as refused:
        compute_report([], [], start=START, end=END, interval_minutes=20)
    assert str(refused.value) == "interval must be 15, 30 or 60 minutes"
    with pytest.raises(ValueError) as unknown:
        Standards.from_mapping({"max_tlak_seconds": 1})
    assert str(unknown.value) == (
        "standards: unknown key 'max_tlak_seconds' (expected one of: max_acw_seconds, max_hold_seconds, "
        "max_talk_seconds, max_wait_seconds, service_level_seconds, service_level_target, short_abandon_seconds)")
