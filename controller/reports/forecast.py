"""Forecasting offered calls and handle time per interval from a queue's history (README "Forecasting").

The classic workforce-management split, each part fitted on the history:

- **daily volume**: a Poisson regression (statsmodels GLM, log link) of each day's offered calls on
  a trend (weeks), the day's kind from the holiday calendar (workday or rest day; a 调休 make-up
  workday on a weekend counts as a workday), the weekday within each kind, and public holidays (a
  holiday's own effect once the history holds one; before that a holiday is forecast like a Sunday);
- **time of day**: each interval's share of the day's calls, per day class (Monday … Friday as
  workdays, Saturday, Sunday/holiday), shrunk towards the pooled workday or rest-day shape when a
  class has few calls;
- **handle time**: answered calls' mean handle time (talk + hold + ACW) per interval of the day and
  day kind, shrunk towards the overall mean when an interval has few answered calls.

Accuracy is measured the honest way: fit on the history without its last days, forecast those days,
and compare (MAPE over the intervals and days that had calls: MAPE is undefined at zero).
Days are local days (the controller's time zone).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property

import holidays
import numpy as np
from numpy.typing import NDArray

#: Calls that weigh a day class's own time-of-day shape as much as the pooled shape.
PROFILE_PRIOR_CALLS = 50.0
#: Answered calls that weigh an interval's own mean handle time as much as the overall mean.
AHT_PRIOR_CALLS = 5.0
#: Fewer days than this: no trend is fitted (a trend needs two weeks to stand apart from weekdays).
TREND_MIN_DAYS = 14


@dataclass(frozen=True, slots=True)
class Visit:
    """One call offered to the queue: when, and its handle time if an agent answered it."""

    offered_at: float
    handle_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class IntervalForecast:
    start: float  # epoch seconds
    calls: float
    aht_seconds: float


@dataclass(frozen=True, slots=True)
class Accuracy:
    holdout_days: int
    interval_mape: float | None  # mean |forecast − actual| / actual over intervals with calls
    daily_mape: float | None
    intervals_compared: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"holdout_days": self.holdout_days, "intervals_compared": self.intervals_compared,
                "interval_mape": None if self.interval_mape is None else round(self.interval_mape, 4),
                "daily_mape": None if self.daily_mape is None else round(self.daily_mape, 4)}


class HolidayCalendar:
    """Public holidays and make-up workdays (调休) from the `holidays` library, for one country.

    `country` is an ISO code ("CN" by default in the settings); "" means no holidays: Saturday and
    Sunday are the rest days."""

    def __init__(self, country: str = "CN") -> None:
        self.country = country
        self._calendars: dict[int, holidays.HolidayBase] = {}

    def _year(self, year: int) -> holidays.HolidayBase | None:
        if not self.country:
            return None
        if year not in self._calendars:
            self._calendars[year] = holidays.country_holidays(self.country, years=year)
        return self._calendars[year]

    def is_holiday(self, day: date) -> bool:
        calendar = self._year(day.year)
        return calendar is not None and day in calendar

    def is_workday(self, day: date) -> bool:
        calendar = self._year(day.year)
        if calendar is None:
            return day.weekday() < 5
        return bool(calendar.is_working_day(day))


def profile_class(day: date, calendar: HolidayCalendar) -> str:
    """The time-of-day shape a day follows: its weekday when a workday, else "sat" or "sun" (holidays too)."""
    if calendar.is_workday(day):
        return f"wd{min(day.weekday(), 4)}" if day.weekday() < 5 else "wd0"  # a 调休 Saturday runs like a Monday
    return "sat" if day.weekday() == 5 and not calendar.is_holiday(day) else "sun"


#: The daily regression's columns (one is dropped when the history cannot estimate it).
DAY_FEATURES = ("const", "trend", "rest", "tue", "wed", "thu", "fri", "sunday_like", "holiday")


def day_features(day: date, index: float, calendar: HolidayCalendar) -> dict[str, float]:
    workday, holiday = calendar.is_workday(day), calendar.is_holiday(day)
    weekday = day.weekday()
    rest = not workday
    return {"const": 1.0, "trend": index / 7.0, "rest": float(rest),
            **{name: float(workday and weekday == k) for k, name in enumerate(("tue", "wed", "thu", "fri"), 1)},
            "sunday_like": float(rest and (weekday == 6 or holiday)), "holiday": float(holiday)}


@dataclass
class Model:
    """A fitted forecast for one queue (see the module's docstring)."""

    interval_minutes: int
    calendar: HolidayCalendar
    first_day: date  # the history's first day (trend index 0)
    columns: list[str]
    coefficients: NDArray[np.float64]
    profiles: dict[str, NDArray[np.float64]]
    aht_by_kind: dict[bool, NDArray[np.float64]]  # workday? -> seconds per interval
    mean_daily_calls: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def slots(self) -> int:
        return 24 * 60 // self.interval_minutes

    def daily_calls(self, day: date) -> float:
        if not self.columns:
            return self.mean_daily_calls
        features = day_features(day, (day - self.first_day).days, self.calendar)
        row = np.array([features[name] for name in self.columns])
        return float(math.exp(min(50.0, float(row @ self.coefficients))))

    def predict_day(self, day: date) -> list[IntervalForecast]:
        total = self.daily_calls(day)
        profile = self.profiles[profile_class(day, self.calendar)]
        aht = self.aht_by_kind[self.calendar.is_workday(day)]
        midnight = datetime(day.year, day.month, day.day)
        return [IntervalForecast((midnight + timedelta(minutes=slot * self.interval_minutes)).timestamp(),
                                 float(total * profile[slot]), float(aht[slot])) for slot in range(self.slots)]


class History:
    """Offered calls per local day and interval, and answered calls' handle times, from `Visit`s."""

    def __init__(self, visits: Iterable[Visit], *, first_day: date, days: int, interval_minutes: int) -> None:
        if interval_minutes not in (15, 30, 60):
            raise ValueError("the interval is 15, 30 or 60 minutes")
        if days < 1:
            raise ValueError("the history needs at least one day")
        self.first_day, self.days, self.interval_minutes = first_day, days, interval_minutes
        slots = 24 * 60 // interval_minutes
        self.counts = np.zeros((days, slots))
        self.handle_sum = np.zeros((days, slots))
        self.handled = np.zeros((days, slots))
        for visit in visits:
            moment = datetime.fromtimestamp(visit.offered_at)
            index = (moment.date() - first_day).days
            if not 0 <= index < days:
                continue
            slot = (moment.hour * 60 + moment.minute) // interval_minutes
            self.counts[index, slot] += 1
            if visit.handle_seconds is not None and visit.handle_seconds > 0:
                self.handle_sum[index, slot] += visit.handle_seconds
                self.handled[index, slot] += 1

    def day(self, index: int) -> date:
        return self.first_day + timedelta(days=index)

    @cached_property
    def total_calls(self) -> float:
        return float(self.counts.sum())


def fit(history: History, calendar: HolidayCalendar, *, upto: int | None = None,
        default_aht_seconds: float = 180.0) -> Model:
    """Fit the model on the history's first `upto` days (all of them by default)."""
    days = history.days if upto is None else upto
    counts = history.counts[:days]
    slots = counts.shape[1]
    notes: list[str] = []
    daily = counts.sum(axis=1)
    day_list = [history.day(i) for i in range(days)]
    rows = [day_features(day, i, calendar) for i, day in enumerate(day_list)]
    columns = [name for name in DAY_FEATURES
               if name == "const" or (any(row[name] for row in rows) and not all(row[name] for row in rows))]
    if days < TREND_MIN_DAYS and "trend" in columns:
        columns.remove("trend")
        notes.append(f"no trend: fewer than {TREND_MIN_DAYS} days of history")
    if "holiday" not in columns:
        notes.append("no holiday in the history: holidays are forecast like Sundays")
    if days < len(columns) + 3:  # too few days for each weekday's own effect: workdays and rest days only
        columns = [name for name in columns if name in ("const", "rest")]
        notes.append("few days of history: one level for workdays, one for rest days")
    coefficients = np.zeros(len(columns))
    if daily.sum() > 0:
        import statsmodels.api as sm  # here: ~150 MB and 1 s at import, needed only by a forecast (README "Benchmarks")

        design = np.array([[row[name] for name in columns] for row in rows])
        # Poisson GLM: counts, a log link (multiplicative weekday and holiday effects, exponential trend).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (near-)perfect fits of tiny histories: the estimates are still usable
            result = sm.GLM(daily, design, family=sm.families.Poisson()).fit()
        coefficients = np.asarray(result.params, dtype=float)
        if not np.all(np.isfinite(coefficients)):
            columns, coefficients = [], np.zeros(0)
            notes.append("the regression did not converge: the daily mean is used")
    else:
        columns, coefficients = [], np.zeros(0)
    classes = [profile_class(day, calendar) for day in day_list]
    profiles = _profiles(counts, classes, slots)
    aht = _handle_times(history, days, [calendar.is_workday(d) for d in day_list], default_aht_seconds)
    return Model(history.interval_minutes, calendar, history.first_day, columns, coefficients, profiles, aht,
                 mean_daily_calls=float(daily.mean()) if days else 0.0, notes=notes)


Floats = NDArray[np.float64]


def _shares(rows: Floats, prior: Floats, weight: float = PROFILE_PRIOR_CALLS) -> Floats:
    """Each interval's share of the day: the rows' own shape, shrunk towards `prior` when they hold few calls."""
    summed = rows.sum(axis=0) if rows.size else np.zeros_like(prior)
    shares: NDArray[np.float64] = (summed + weight * prior) / (summed.sum() + weight)
    return shares


def _profiles(counts: NDArray[np.float64], classes: list[str], slots: int) -> dict[str, NDArray[np.float64]]:
    uniform = np.full(slots, 1.0 / slots)
    overall = _shares(counts, uniform)
    workdays = np.array([c.startswith("wd") for c in classes], dtype=bool)
    pooled = {True: _shares(counts[workdays], overall), False: _shares(counts[~workdays], overall)}
    profiles = {}
    for name in ("wd0", "wd1", "wd2", "wd3", "wd4", "sat", "sun"):
        rows = counts[np.array([c == name for c in classes], dtype=bool)]
        profiles[name] = _shares(rows, pooled[name.startswith("wd")])
    return profiles


def _handle_times(history: History, days: int, workday: list[bool],
                  default: float) -> dict[bool, NDArray[np.float64]]:
    total, count = history.handle_sum[:days], history.handled[:days]
    overall = float(total.sum() / count.sum()) if count.sum() else default
    kinds = np.array(workday, dtype=bool)
    result = {}
    for kind in (True, False):
        chosen_sum, chosen_count = total[kinds == kind].sum(axis=0), count[kinds == kind].sum(axis=0)
        result[kind] = (chosen_sum + AHT_PRIOR_CALLS * overall) / (chosen_count + AHT_PRIOR_CALLS)
    return result


def accuracy(history: History, calendar: HolidayCalendar, holdout_days: int,
             default_aht_seconds: float = 180.0) -> Accuracy:
    """Fit without the last `holdout_days` days, forecast them, and compare with what happened."""
    holdout_days = min(holdout_days, history.days - 1)
    if holdout_days < 1:
        return Accuracy(0, None, None, 0)
    model = fit(history, calendar, upto=history.days - holdout_days, default_aht_seconds=default_aht_seconds)
    interval_errors: list[float] = []
    daily_errors: list[float] = []
    for index in range(history.days - holdout_days, history.days):
        forecast = np.array([row.calls for row in model.predict_day(history.day(index))])
        actual = history.counts[index]
        busy = actual > 0
        interval_errors += list(np.abs(forecast[busy] - actual[busy]) / actual[busy])
        if actual.sum() > 0:
            daily_errors.append(abs(forecast.sum() - actual.sum()) / actual.sum())
    return Accuracy(holdout_days, float(np.mean(interval_errors)) if interval_errors else None,
                    float(np.mean(daily_errors)) if daily_errors else None, len(interval_errors))

