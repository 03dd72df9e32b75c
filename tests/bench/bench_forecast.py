"""Forecast accuracy on a generated history (tests/unit/test_forecast.py's generator: weekly and daily
seasonality, 0.2 %/day growth, Poisson arrivals): MAPE on 7 held-out days against what "happened"
(the noisy arrivals) and against the true rates, per interval and per day, and the cost of a fit and a plan."""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np

from controller.plugins.wfm.services import Targets, staffing_row
from controller.reports import forecast
from tests.unit.test_forecast import NO_HOLIDAYS, expected_calls, generate

FIRST = date(2026, 8, 3)  # a Monday
HISTORY_DAYS = 63
HOLDOUT = 7


def main() -> None:
    print(f"{HISTORY_DAYS} days of history (the last {HOLDOUT} held out); MAPE over intervals with calls")
    print(f"{'calls/day':>9} {'interval':>8} {'fit ms':>7} {'MAPE interval':>13} {'MAPE day':>8}"
          f" {'vs true rates':>13} {'plan ms':>7}")
    for per_day in (200, 800, 3000):
        for minutes in (15, 30):
            slots = 24 * 60 // minutes
            visits = generate(FIRST, HISTORY_DAYS, per_day, slots=slots)
            history = forecast.History(visits, first_day=FIRST, days=HISTORY_DAYS, interval_minutes=minutes)
            started = time.perf_counter()
            accuracy = forecast.accuracy(history, NO_HOLIDAYS, HOLDOUT)
            fit_ms = 1000 * (time.perf_counter() - started)
            model = forecast.fit(history, NO_HOLIDAYS, upto=HISTORY_DAYS - HOLDOUT)
            errors = []
            for index in range(HISTORY_DAYS - HOLDOUT, HISTORY_DAYS):
                day = FIRST + timedelta(index)
                for slot, row in enumerate(model.predict_day(day)):
                    true = expected_calls(index, day, slot, slots, per_day)
                    if true >= 1:
                        errors.append(abs(row.calls - true) / true)
            started = time.perf_counter()
            rows = [staffing_row(row, minutes, Targets(0.8, 20, 0.3, None))
                    for row in model.predict_day(FIRST + timedelta(HISTORY_DAYS))]
            plan_ms = 1000 * (time.perf_counter() - started)
            assert accuracy.interval_mape is not None and accuracy.daily_mape is not None and rows
            print(f"{per_day:>9} {minutes:>6} m {fit_ms:>7.0f} {100 * accuracy.interval_mape:>12.1f}%"
                  f" {100 * accuracy.daily_mape:>7.1f}% {100 * float(np.mean(errors)):>12.1f}% {plan_ms:>7.0f}")
