"""Forecasts (a generated history with known seasonality, holidays, the store's own records) and staffing plans."""

from __future__ import annotations

import heapq
import json
import math
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from controller.cli.wfm import intraday_table, plan_table
from controller.clock import FakeClock
from controller.config import AcdAgentConfig, AcdQueueConfig, AcdSettings, Config, WfmSettings
from controller.plugins.acd.services import AcdService
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.reports.services import ReportService
from controller.plugins.wfm.schedules import ScheduleError, Shift
from controller.plugins.wfm.services import Targets, WfmService, staffing_row
from controller.plugins.wfm.state_persistor import ShiftRecords
from controller.reports import erlang, forecast
from controller.store.db import Store

WEEKDAY_FACTOR = (1.0, 0.95, 0.9, 0.9, 0.85, 0.5, 0.4)  # Monday … Sunday
GROWTH_PER_DAY = 0.002
NO_HOLIDAYS = forecast.HolidayCalendar("")


def day_shape(slot: int, slots: int) -> float:
    """Open 08:00–20:00, a midday peak: the known time-of-day seasonality."""
    hour = slot * 24 / slots
    return 0.0 if hour < 8 or hour >= 20 else 1 + math.sin((hour - 8) / 12 * math.pi)


def expected_calls(day_index: int, day: date, slot: int, slots: int, per_day: float) -> float:
    norm = sum(day_shape(s, slots) for s in range(slots))
    return per_day * WEEKDAY_FACTOR[day.weekday()] * (1 + GROWTH_PER_DAY * day_index) * day_shape(slot, slots) / norm


def generate(first: date, days: int, per_day: float, slots: int = 48, seed: int = 7,
             factor: dict[date, float] | None = None) -> list[forecast.Visit]:
    """Poisson arrivals at the known rates; 90 % answered with exponential handle times (mean 200 s)."""
    rng = np.random.default_rng(seed)
    visits = []
    length = 86400 / slots
    for index in range(days):
        day = first + timedelta(index)
        midnight = datetime(day.year, day.month, day.day).timestamp()
        for slot in range(slots):
            rate = expected_calls(index, day, slot, slots, per_day) * (factor or {}).get(day, 1.0)
            for offset in rng.uniform(0, length, rng.poisson(rate)):
                handle = float(rng.exponential(200)) if rng.random() < 0.9 else None
                visits.append(forecast.Visit(midnight + slot * length + offset, handle))
    return visits


def test_a_generated_history_s_weekly_and_daily_seasonality_and_trend_are_recovered() -> None:
    """Stated error: against the true rates of the week after 9 weeks of history, the interval forecasts'
    MAPE is under 10 % (intervals expecting ≥ 1 call) and every day's total is within 5 %."""
    first, days, slots = date(2026, 8, 3), 63, 48
    history = forecast.History(generate(first, days, 800), first_day=first, days=days, interval_minutes=30)
    model = forecast.fit(history, NO_HOLIDAYS)
    assert "trend" in model.columns
    errors = []
    for index in range(days, days + 7):
        day = first + timedelta(index)
        rows = model.predict_day(day)
        truth = [expected_calls(index, day, slot, slots, 800) for slot in range(slots)]
        errors += [abs(row.calls - true) / true for row, true in zip(rows, truth, strict=True) if true >= 1]
        assert sum(row.calls for row in rows) == pytest.approx(sum(truth), rel=0.05), day
        assert all(row.calls < 0.5 for row, true in zip(rows, truth, strict=True) if true == 0)  # closed at night
        assert rows[0].start == datetime(day.year, day.month, day.day).timestamp()
    assert float(np.mean(errors)) < 0.10
    # Handle time: the generated mean (200 s) within 5 % at a busy interval.
    assert model.predict_day(first + timedelta(days))[28].aht_seconds == pytest.approx(200, rel=0.05)
    # Held-out accuracy is measured against the noisy actuals: per day close, per interval Poisson noise.
    accuracy = forecast.accuracy(history, NO_HOLIDAYS, 7)
    assert accuracy.daily_mape is not None and accuracy.daily_mape < 0.06
    assert accuracy.interval_mape is not None and accuracy.interval_mape < 0.3
    assert accuracy.intervals_compared > 100


def test_holidays_and_make_up_workdays_follow_the_china_calendar() -> None:
    """2026's Spring Festival (Feb 15–23 off) and its make-up workdays (Sat Feb 14 and Sat Feb 28, 调休)."""
    calendar = forecast.HolidayCalendar("CN")
    assert calendar.is_workday(date(2026, 2, 14)) and not calendar.is_workday(date(2026, 2, 17))
    assert calendar.is_holiday(date(2026, 2, 17)) and not calendar.is_holiday(date(2026, 2, 21 - 7))
    assert forecast.profile_class(date(2026, 2, 28), calendar) == "wd0"  # a Saturday that is a workday
    first, days = date(2025, 12, 1), 84  # the history holds New Year (Jan 1–3) and a 调休 Sunday (Jan 4)

    def level(day: date) -> float:
        """Holidays at a quarter of a Monday; a make-up workday like a Monday; other days as usual."""
        target = 0.25 if calendar.is_holiday(day) else 1.0 if calendar.is_workday(day) and day.weekday() >= 5 \
            else WEEKDAY_FACTOR[day.weekday()]
        return target / WEEKDAY_FACTOR[day.weekday()]
    factors = {first + timedelta(i): level(first + timedelta(i)) for i in range(days)}
    history = forecast.History(generate(first, days, 600, factor=factors), first_day=first, days=days,
                               interval_minutes=30)
    model = forecast.fit(history, calendar)
    assert "holiday" in model.columns
    workday, holiday = model.daily_calls(date(2026, 2, 24)), model.daily_calls(date(2026, 2, 17))
    saturday, make_up = model.daily_calls(date(2026, 3, 7)), model.daily_calls(date(2026, 2, 28))
    assert holiday < saturday < workday  # a Tuesday in the Spring Festival is quieter than an ordinary Saturday
    assert make_up == pytest.approx(model.daily_calls(date(2026, 3, 2)), rel=0.05)  # 调休 Saturday ≈ Monday
    assert make_up > 1.5 * saturday
    # Without a calendar the same Saturday is just a Saturday.
    plain = forecast.fit(history, NO_HOLIDAYS)
    assert plain.daily_calls(date(2026, 2, 28)) == pytest.approx(plain.daily_calls(date(2026, 3, 7)), rel=0.05)


def test_an_empty_or_short_history_gives_a_forecast_not_an_error() -> None:
    first = date(2026, 11, 2)
    empty = forecast.fit(forecast.History([], first_day=first, days=7, interval_minutes=15), NO_HOLIDAYS)
    rows = empty.predict_day(first + timedelta(7))
    assert len(rows) == 96 and all(row.calls == 0 and row.aht_seconds == 180 for row in rows)
    short = forecast.History(generate(first, 3, 300), first_day=first, days=3, interval_minutes=60)
    model = forecast.fit(short, NO_HOLIDAYS)
    assert "trend" not in model.columns and any("trend" in note for note in model.notes)
    assert sum(row.calls for row in model.predict_day(first + timedelta(3))) > 100
    with pytest.raises(ValueError):
        forecast.History([], first_day=first, days=7, interval_minutes=20)


# -- staffing ------------------------------------------------------------------------------------------

def test_the_plan_s_agents_match_the_published_erlang_c_tables() -> None:
    """Call Centre Helper's Erlang C table (100 calls per 30 min, AHT 180 s, 80/20: 13 agents reach 79.56 %,
    14 reach 88.84 %) and Westbay Engineers' worked example (360 calls per 30 min, 240 s, 15 s: 55 agents
    reach 84.59 %, 54 do not reach 80 %)."""
    targets = Targets(0.8, 20, 0.3, None)
    row = staffing_row(forecast.IntervalForecast(0.0, 100, 180), 30, targets)
    assert row["agents"] == 14 and row["service_level"] == pytest.approx(0.8884, abs=5e-5)
    assert row["scheduled_agents"] == 20  # 14 / (1 − 0.3)
    assert "abandon_rate" in row and row["abandon_rate"] is None
    westbay = staffing_row(forecast.IntervalForecast(0.0, 360, 240), 30, Targets(0.8, 15, 0.0, None))
    assert erlang.achieved(55, calls=360, aht_seconds=240, answer_within_seconds=15).service_level == \
        pytest.approx(0.8459, abs=5e-5)
    assert westbay["agents"] <= 55 and westbay["scheduled_agents"] == westbay["agents"]
    assert erlang.achieved(westbay["agents"] - 1, calls=360, aht_seconds=240,
                           answer_within_seconds=15).service_level < 0.8
    quiet = staffing_row(forecast.IntervalForecast(0.0, 0.01, 180), 30, targets)
    assert quiet["agents"] == 0 and quiet["service_level"] is None


def test_erlang_a_tends_to_erlang_c_and_its_two_routes_to_abandonment_agree() -> None:
    # Callers who never give up: Erlang A is Erlang C (the published 10-erlang table above, 13 agents).
    patient = erlang.achieved_with_abandonment(13, calls=100, aht_seconds=180, patience_seconds=1e7)
    assert patient.probability_of_waiting == pytest.approx(0.2853, abs=5e-4)
    assert patient.service_level == pytest.approx(0.7956, abs=5e-4)
    assert patient.asa_seconds == pytest.approx(17.1, abs=0.1)
    # Answered sooner or later (the tagged caller's chain at t → ∞) = 1 − abandonment (θ·Lq/λ, the
    # stationary chain): two independent computations of the same number.
    for agents in (8, 10, 12):
        eventually = erlang.achieved_with_abandonment(agents, calls=100, aht_seconds=180, patience_seconds=120,
                                                      answer_within_seconds=1e5)
        assert eventually.abandon_rate is not None
        assert eventually.service_level == pytest.approx(1 - eventually.abandon_rate, abs=1e-9)
    # Impatient callers: fewer agents reach the target, and the plan says how many hang up.
    needed_a = erlang.agents_needed(calls=100, aht_seconds=180, patience_seconds=120)
    assert needed_a.agents == 12 and needed_a.service_level >= 0.8
    assert erlang.achieved_with_abandonment(11, calls=100, aht_seconds=180, patience_seconds=120).service_level < 0.8
    assert erlang.agents_needed(calls=100, aht_seconds=180).agents == 14
    row = staffing_row(forecast.IntervalForecast(0.0, 100, 180), 30, Targets(0.8, 20, 0.0, 120))
    assert row["agents"] == 12 and 0 < row["abandon_rate"] < 0.1
    # Traffic beyond the agents is stable with abandonment (Erlang C would say: unbounded).
    overload = erlang.achieved_with_abandonment(8, calls=100, aht_seconds=180, patience_seconds=120)
    assert 0 < overload.service_level < 0.8 and overload.abandon_rate is not None and overload.abandon_rate > 0.1
    with pytest.raises(ValueError):
        erlang.achieved_with_abandonment(5, calls=100, aht_seconds=180, patience_seconds=0)


def simulate_mmn_m(agents: int, *, calls_per_second: float, aht: float, patience: float, within: float,
                   arrivals: int, seed: int = 11) -> tuple[float, float]:
    """A first-come-first-served M/M/N+M queue, simulated: (answered within `within` / offered, abandoned / offered).

    A caller's wait is set by those before them (the earliest a server frees up), so one pass in arrival
    order with a heap of the servers' free times is exact; a caller whose wait would exceed their patience
    hangs up and takes no server."""
    rng = random.Random(seed)
    free = [0.0] * agents
    answered_within = abandoned = 0
    clock = 0.0
    for _ in range(arrivals):
        clock += rng.expovariate(calls_per_second)
        start = max(clock, free[0])
        if start - clock > rng.expovariate(1 / patience):
            abandoned += 1
            continue
        heapq.heapreplace(free, start + rng.expovariate(1 / aht))
        answered_within += start - clock <= within
    return answered_within / arrivals, abandoned / arrivals


def test_erlang_a_agrees_with_a_simulated_queue() -> None:
    """An independent check (no published Erlang A table was at hand): 300,000 simulated callers."""
    for agents in (9, 12):
        exact = erlang.achieved_with_abandonment(agents, calls=100, aht_seconds=180, patience_seconds=120)
        level, abandon = simulate_mmn_m(agents, calls_per_second=100 / 1800, aht=180, patience=120, within=20,
                                        arrivals=300_000)
        assert exact.service_level == pytest.approx(level, abs=0.01)
        assert exact.abandon_rate == pytest.approx(abandon, abs=0.005)


# -- the store's own records ------------------------------------------------------------------------------

async def test_a_plan_and_the_intraday_view_from_the_store_s_own_records(tmp_path: Path) -> None:
    """Two weeks of queue visits and ACW written the way the ACD writes them (AcdRecords): 09:00–09:30 busy on
    workdays, quiet at weekends; the plan for the next Monday forecasts the busy half hour and staffs it, and
    that Monday's intraday view puts the forecast next to the actual calls, the shift and the agent's states."""
    first = date(2026, 11, 2)  # a Monday
    clock = FakeClock(datetime(2026, 11, 16, 8, 0).timestamp())
    store = Store(tmp_path / "controller.sqlite3")
    await store.open()
    config = Config(acd=AcdSettings(queues=[AcdQueueConfig(name="general")], agents=[
        AcdAgentConfig(id="1001", name="A", number="1001", endpoint="8001", queues={"general": 0})]),
        wfm=WfmSettings(history_days=14, holdout_days=2, holidays=""))
    records = AcdRecords(store, clock.now)
    acd = AcdService(config=config, clock=clock, records=records, publish=lambda *a, **k: None,
                     media_for=None)  # type: ignore[arg-type]
    reports = ReportService(config=config, store=store, acd=acd, clock=clock)
    wfm = WfmService(config=config, reports=reports, shifts=ShiftRecords(store, clock.now))
    now = clock.now()
    for index in range(14):
        day = first + timedelta(index)
        calls = 20 if day.weekday() < 5 else 2
        for number in range(calls):
            at = datetime(day.year, day.month, day.day, 9, 0).timestamp() + number * 60
            call_id = f"c{index}-{number}"
            clock._now = at  # the writers stamp rows with the clock
            records.enqueued(call_id, "general", 0)
            clock._now = at + 10
            records.left(call_id, "answered", 10.0, "1001")
            clock._now = at + 250
            records.talk_ended(call_id)
            records.agent_state("1001", "acw", None, "talking", at + 250)  # 30 s of after-call work
            records.agent_state("1001", "ready", None, "acw", at + 280)
    clock._now = now
    await store.flush()
    plan = await wfm.plan("general", first_day=date(2026, 11, 16), days=1, interval_minutes=30)
    rows = {datetime.fromtimestamp(row["start"]).strftime("%H:%M"): row for row in plan["rows"]}
    assert rows["09:00"]["calls"] == pytest.approx(20, rel=0.1)
    assert rows["09:00"]["aht_seconds"] == pytest.approx(270, rel=0.02)  # talk 240 s + ACW 30 s
    assert rows["09:00"]["agents"] == erlang.agents_needed(calls=rows["09:00"]["calls"],
                                                           aht_seconds=rows["09:00"]["aht_seconds"]).agents
    assert rows["09:00"]["scheduled_agents"] == erlang.scheduled(rows["09:00"]["agents"], 0.3)
    assert rows["03:00"]["calls"] < 0.5 and rows["03:00"]["agents"] == 0
    assert plan["accuracy"]["holdout_days"] == 2 and plan["accuracy"]["daily_mape"] is not None
    assert plan["targets"]["service_level_target"] == 0.8 and plan["targets"]["answer_within_seconds"] == 20

    # The day itself, by noon: 5 calls at 09:00–09:04, the agent on a 08:00–17:00 shift, on the phones (ready)
    # 09:00–09:15 only (logged out since Sunday evening).
    monday = datetime(2026, 11, 16).timestamp()
    records.agent_state("1001", "logged_out", None, "ready", monday - 4 * 3600)
    records.agent_state("1001", "ready", None, "logged_out", monday + 9 * 3600)
    records.agent_state("1001", "not_ready", "meal", "ready", monday + 9.25 * 3600)
    for number in range(5):
        clock._now = monday + 9 * 3600 + number * 60
        records.enqueued(f"today-{number}", "general", 0)
        clock._now += 5
        records.left(f"today-{number}", "answered", 5.0, "1001")
        clock._now += 200
        records.talk_ended(f"today-{number}")
    clock._now = monday + 12 * 3600
    await wfm.add_shifts([Shift("1001", monday + 8 * 3600, monday + 17 * 3600, "work")], "test")
    with pytest.raises(ScheduleError, match="no agent '1009'"):
        await wfm.add_shifts([Shift("1009", monday, monday + 3600)], "test")
    day = await wfm.intraday("general", date(2026, 11, 16), 30)
    by_time = {datetime.fromtimestamp(row["start"]).strftime("%H:%M"): row for row in day["rows"]}
    nine = by_time["09:00"]
    assert nine["calls"] == rows["09:00"]["calls"] and nine["agents"] == rows["09:00"]["agents"]  # the plan's
    assert nine["actual_calls"] == 5 and nine["actual_aht_seconds"] == pytest.approx(200, abs=0.5)
    assert nine["staffed"] == 0.5 and nine["scheduled_on_shift"] == 1
    assert by_time["08:30"]["staffed"] == 0 and by_time["08:30"]["actual_calls"] == 0
    assert by_time["07:30"]["scheduled_on_shift"] == 0 and by_time["16:30"]["scheduled_on_shift"] == 1
    assert by_time["13:00"]["actual_calls"] is None and by_time["13:00"]["staffed"] is None  # not yet
    assert [s.agent_id for _, s in await wfm.shifts.between(monday, monday + 86400)] == ["1001"]
    # What `ccctl forecast` and `ccctl intraday` print from these answers.
    text = plan_table({**plan, "busy_only": True})
    assert "queue general: 1 day(s) from 2026-11-16, 30-minute intervals, learnt from 14 days" in text
    assert "Erlang C: 80% answered within 20 s, shrinkage 30%" in text and "MAPE" in text
    busy_line = next(line for line in text.splitlines() if line.startswith("11-16 09:00"))
    assert busy_line.split()[2:] == [f"{rows['09:00']['calls']:.2f}", f"{rows['09:00']['aht_seconds']:.2f}",
                                     str(rows["09:00"]["agents"]), str(rows["09:00"]["scheduled_agents"]),
                                     f"{100 * rows['09:00']['service_level']:.1f}%"]
    assert "11-16 03:00" not in text  # --busy-only
    nine_line = next(line for line in intraday_table(day).splitlines() if line.startswith("11-16 09:00"))
    assert nine_line.split()[2:] == [f"{nine['calls']:.2f}", "5", f"{nine['aht_seconds']:.2f}", "200.00",
                                     str(nine["agents"]), "1", "0.50"]
    await store.close()


def test_ccctl_erlang_with_patience_is_erlang_a(capsys: pytest.CaptureFixture[str]) -> None:
    from controller.cli import main as cli

    assert cli.main(["erlang", "--calls", "100", "--aht", "180", "--patience", "120"]) == 0
    out = capsys.readouterr().out
    assert "needed: 12" in out and "hang up while waiting" in out
    assert cli.main(["erlang", "--calls", "100", "--aht", "180", "--agents", "10", "--patience", "120", "--json"]) == 0
    assert 0.1 < json.loads(capsys.readouterr().out)["abandon_rate"] < 0.2
