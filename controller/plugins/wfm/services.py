"""Workforce management: staffing plans from forecasts, schedules, adherence and the intraday view.

History comes from the reports' own facts (`ReportService.call_facts`: one per queue visit, handle
time = talk + hold + ACW, the README's AHT), so a forecast learns from the same numbers the KPIs show.
Models are fitted in a thread (statsmodels) and kept per (queue, first day, interval) until the day changes.
(A plan for tomorrow learns from today only as far as today had gone at the day's first plan.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from controller.config import Config
from controller.plugins.wfm.schedules import (
    ON_PHONES,
    Adherence,
    Shift,
    StateSpan,
    adherence_now,
    adherence_share,
    check,
    scheduled_activity,
)
from controller.plugins.wfm.state_persistor import ShiftRecords
from controller.reports import erlang, forecast

if TYPE_CHECKING:
    from controller.plugins.reports.services import ReportService

#: Forecast calls below this in an interval need nobody (a fraction of a call is not worth an agent).
NEGLIGIBLE_CALLS = 0.05
MAX_PLAN_DAYS = 31


class UnknownQueue(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Targets:
    """A queue's staffing targets: the standards' service level, its threshold, shrinkage, patience."""

    service_level: float
    within_seconds: float
    shrinkage: float
    patience_seconds: float | None

    def as_dict(self) -> dict[str, float | str | None]:
        return {"service_level_target": self.service_level, "answer_within_seconds": self.within_seconds,
                "shrinkage": self.shrinkage, "patience_seconds": self.patience_seconds,
                "model": "erlang_a" if self.patience_seconds else "erlang_c"}


def staffing_row(row: forecast.IntervalForecast, interval_minutes: int, targets: Targets) -> dict[str, Any]:
    """One plan row: the forecast and the agents it needs (Erlang C, or Erlang A with patience)."""
    data: dict[str, Any] = {"start": row.start, "calls": round(row.calls, 2), "aht_seconds": round(row.aht_seconds, 1)}
    if row.calls < NEGLIGIBLE_CALLS:
        return {**data, "agents": 0, "scheduled_agents": 0, "service_level": None, "abandon_rate": None}
    staffing = erlang.agents_needed(calls=row.calls, aht_seconds=row.aht_seconds, interval_minutes=interval_minutes,
                                    target_service_level=targets.service_level,
                                    answer_within_seconds=targets.within_seconds,
                                    patience_seconds=targets.patience_seconds)
    return {**data, "agents": staffing.agents, "scheduled_agents": erlang.scheduled(staffing.agents, targets.shrinkage),
            "service_level": round(staffing.service_level, 4), "abandon_rate": staffing.as_dict().get("abandon_rate")}


def local_midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day).timestamp()


class WfmService:
    def __init__(self, *, config: Config, reports: ReportService, shifts: ShiftRecords) -> None:
        self.config = config
        self.settings = config.wfm
        self.reports = reports
        self.acd = reports.acd
        self.shifts = shifts
        self.calendar = forecast.HolidayCalendar(self.settings.holidays)
        # (queue, first forecast day, interval, today) -> fitted model: a history reaching today changes all day,
        # so a model of a future day is fitted again each day (and every plan after a restart).
        self._models: dict[tuple[str, date, int, date], tuple[forecast.Model, forecast.Accuracy]] = {}

    def now(self) -> float:
        return self.reports.clock.now()

    def today(self) -> date:
        return datetime.fromtimestamp(self.now()).date()

    def targets(self, queue: str) -> Targets:
        config = self.acd.queue_configs.get(queue)
        if config is None:
            raise UnknownQueue(f"no queue {queue!r}")
        return Targets(self.reports.standards.service_level_target, config.service_level_seconds,
                       self.settings.shrinkage, self.settings.patience_seconds.get(queue))

    async def history(self, queue: str, first_day: date, days: int, interval_minutes: int) -> forecast.History:
        """The queue's offered calls and handle times per interval (counted in a thread: weeks of calls)."""
        facts = await self.reports.call_facts(local_midnight(first_day), local_midnight(first_day + timedelta(days)))

        def count() -> forecast.History:
            visits = [forecast.Visit(fact.offered_at, fact.talk_seconds + fact.hold_seconds + fact.acw_seconds
                                     if fact.outcome == "answered" else None)
                      for fact in facts if fact.queue == queue]
            return forecast.History(visits, first_day=first_day, days=days, interval_minutes=interval_minutes)
        return await asyncio.to_thread(count)

    async def model(self, queue: str, first_forecast_day: date,
                    interval_minutes: int) -> tuple[forecast.Model, forecast.Accuracy]:
        """The model learnt from the `history_days` before `first_forecast_day`, and its held-out accuracy."""
        key = (queue, first_forecast_day, interval_minutes, self.today())
        if key not in self._models:
            days = self.settings.history_days
            history = await self.history(queue, first_forecast_day - timedelta(days), days, interval_minutes)
            aht = self.settings.default_aht_seconds

            def fit() -> tuple[forecast.Model, forecast.Accuracy]:
                return (forecast.fit(history, self.calendar, default_aht_seconds=aht),
                        forecast.accuracy(history, self.calendar, self.settings.holdout_days, aht))
            if len(self._models) > 64:
                self._models.clear()
            self._models[key] = await asyncio.to_thread(fit)
        return self._models[key]

    async def plan(self, queue: str, *, first_day: date, days: int, interval_minutes: int) -> dict[str, Any]:
        """The staffing plan: per interval, forecast calls and AHT, agents needed and to schedule."""
        targets = self.targets(queue)
        model, accuracy = await self.model(queue, first_day, interval_minutes)

        def rows() -> list[dict[str, Any]]:
            return [staffing_row(row, interval_minutes, targets)
                    for offset in range(days) for row in model.predict_day(first_day + timedelta(offset))]
        return {"queue": queue, "first_day": first_day.isoformat(), "days": days,
                "interval_minutes": interval_minutes, "history_days": self.settings.history_days,
                "targets": targets.as_dict(), "accuracy": accuracy.as_dict(), "notes": model.notes,
                "rows": await asyncio.to_thread(rows)}

    # -- schedules and adherence ----------------------------------------------------------------------

    async def add_shifts(self, shifts: list[Shift], created_by: str) -> None:
        check(shifts, set(self.acd.agent_configs))
        await self.shifts.add(shifts, created_by)

    async def day_shifts(self, moment: float) -> dict[str, list[Shift]]:
        """Each agent's shifts overlapping the 24 hours around `moment` (the schedule adherence judges by)."""
        found: dict[str, list[Shift]] = {}
        for _, shift in await self.shifts.between(moment - 12 * 3600, moment + 12 * 3600):
            found.setdefault(shift.agent_id, []).append(shift)
        return found

    async def adherence(self) -> list[Adherence]:
        """Real-time adherence of every configured agent (scheduled activity against ACD state now)."""
        now = self.now()
        shifts = await self.day_shifts(now)
        result = []
        for agent_id in sorted(self.acd.agent_configs):
            view = self.acd.engine.agent(agent_id)
            result.append(adherence_now(agent_id, shifts.get(agent_id, []), state=view.state,
                                        state_since=view.since, now=now,
                                        grace_seconds=self.settings.adherence_grace_seconds))
        return result

    async def adherence_report(self, start: float, end: float) -> list[dict[str, Any]]:
        """Per scheduled agent: time scheduled and time in adherence between `start` and `end`."""
        shifts: dict[str, list[Shift]] = {}
        for _, shift in await self.shifts.between(start, end):
            shifts.setdefault(shift.agent_id, []).append(shift)
        spans: dict[str, list[StateSpan]] = {}
        for span in await self.reports.agent_spans(start, end):
            spans.setdefault(span.agent_id, []).append(StateSpan(span.state, span.start, span.end))
        rows = []
        for agent_id in sorted(shifts):
            scheduled, adhered = adherence_share(shifts[agent_id], spans.get(agent_id, []), start, end)
            rows.append({"agent_id": agent_id, "scheduled_seconds": round(scheduled, 1),
                         "in_adherence_seconds": round(adhered, 1),
                         "adherence": round(adhered / scheduled, 4) if scheduled else None})
        return rows

    # -- intraday ---------------------------------------------------------------------------------------

    async def intraday(self, queue: str, day: date, interval_minutes: int) -> dict[str, Any]:
        """Per interval of `day`: forecast against actual calls and AHT, agents needed, scheduled and staffed."""
        plan = await self.plan(queue, first_day=day, days=1, interval_minutes=interval_minutes)
        actual = await self.history(queue, day, 1, interval_minutes)
        start, end = local_midnight(day), local_midnight(day + timedelta(1))
        serving = {agent_id for agent_id, config in self.acd.agent_configs.items() if queue in config.queues}
        spans = [span for span in await self.reports.agent_spans(start, end)
                 if span.agent_id in serving and span.state in ON_PHONES]
        shifts: dict[str, list[Shift]] = {}
        for _, shift in await self.shifts.between(start, end):
            if shift.agent_id in serving:
                shifts.setdefault(shift.agent_id, []).append(shift)
        length = interval_minutes * 60
        now = self.now()
        rows = []
        for slot, row in enumerate(plan["rows"]):
            left = row["start"]
            right = left + length
            handled = actual.handled[0, slot]
            staffed = sum(max(0.0, min(right, span.end) - max(left, span.start)) for span in spans) / length
            on_shift = sum(1 for agent in shifts.values()
                           if (current := scheduled_activity(agent, left + length / 2)) and current.activity == "work")
            rows.append({**row, "actual_calls": int(actual.counts[0, slot]) if left < now else None,
                         "actual_aht_seconds": round(actual.handle_sum[0, slot] / handled, 1) if handled else None,
                         "scheduled_on_shift": on_shift,
                         "staffed": round(staffed, 2) if left < now else None})
        return {**plan, "day": day.isoformat(), "rows": rows}
