"""Reports from the store: turn the records into KPI facts and compute them (`controller.reports`).

The KPI definitions live in `controller.reports.kpis` (and docs/kpis.md); this module only says
how stored records become `CallFact`s and `AgentStateSpan`s:

- one `CallFact` per queue visit (a `queue_calls` row; a call that overflowed from one queue to
  another has a visit in each), and one `ivr_only` fact per call that never reached a queue;
- talk = agent answered → talk ended; ACW = the agent's `acw` state that followed; hold and
  transfers = the call's `resumed` (held_for) and `transfer` events during that visit's talk;
- callbacks and survey answers come from `ivr_records`, on the call's last visit (counted once);
- agent spans are the intervals between consecutive `agent_states` rows (logged-out time is not
  a span).
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from controller.clock import Clock
from controller.config import Config
from controller.reports.kpis import AgentStateSpan, AlertFact, CallbackFact, CallFact, KpiRow, Standards, compute_report
from controller.store.db import Store

if TYPE_CHECKING:
    from controller.plugins.acd.services import AcdService


class ReportService:
    def __init__(self, *, config: Config, store: Store, acd: AcdService, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.acd = acd
        self.clock = clock

    @property
    def standards(self) -> Standards:
        """The service standards as administered now (the ACD follows the live configuration)."""
        return self.acd.standards

    @property
    def complaint_queues(self) -> set[str]:
        """The queues whose category is complaint, as configured now (live configuration)."""
        return {q.name for q in self.acd.queue_configs.values() if q.category == "complaint"}

    async def report(self, *, start: float, end: float, interval_minutes: int | None, by: str) -> list[KpiRow]:
        calls = await self.call_facts(start, end)
        spans = await self.agent_spans(start, end)
        alerts = await self.alert_facts(start, end)
        callbacks = await self.callback_facts(start, end)
        # A month of records is a lot of arithmetic: in a thread, so live calls keep their event loop.
        return await asyncio.to_thread(compute_report, calls, spans, start=start, end=end,
                                       interval_minutes=interval_minutes, by=by,  # type: ignore[arg-type]
                                       standards=self.standards, alerts=alerts, callbacks=callbacks)

    async def callback_facts(self, start: float, end: float) -> list[CallbackFact]:
        """Callback offers and bookings (the `callbacks` table, README "Callbacks")."""
        rows = await self.store.fetchall(
            "SELECT requested_at, queue, origin, status, attempts, connected_at FROM callbacks"
            " WHERE requested_at >= ? AND requested_at < ?", (start, end))
        return [CallbackFact(row["requested_at"], row["queue"], offered=row["origin"] == "virtual_hold",
                             accepted=row["status"] != "declined", attempts=int(row["attempts"] or 0),
                             connect_seconds=(row["connected_at"] - row["requested_at"]) if row["connected_at"]
                             else None)
                for row in rows]

    async def alert_facts(self, start: float, end: float) -> list[AlertFact]:
        rows = await self.store.fetchall(
            "SELECT at, queue, agent_id, data FROM cti_events WHERE type = 'alert.raised' AND at >= ? AND at < ?",
            (start, end))
        return [AlertFact(row["at"], str(json.loads(row["data"]).get("kind", "")), row["queue"], row["agent_id"])
                for row in rows]

    async def call_facts(self, start: float, end: float) -> list[CallFact]:
        complaints = self.complaint_queues
        visits = await self.store.fetchall(
            "SELECT * FROM queue_calls WHERE enqueued_at >= ? AND enqueued_at < ? AND outcome IS NOT NULL"
            " ORDER BY id", (start, end))
        ivr_only = await self.store.fetchall(
            "SELECT call_id, started_at FROM calls c WHERE started_at >= ? AND started_at < ? AND ended_at IS NOT NULL"
            " AND direction = 'inbound' AND NOT EXISTS (SELECT 1 FROM queue_calls q WHERE q.call_id = c.call_id)",
            (start, end))
        call_ids = {row["call_id"] for row in visits}
        extras = await self._call_extras(call_ids | {row["call_id"] for row in ivr_only})
        acw = await self._acw_after_talk([dict(row) for row in visits])
        facts: list[CallFact] = []
        # A call's callback and survey belong to its last visit only (a transferred call has two
        # visits, one survey): totals count them once.
        last_visit = {row["call_id"]: row["id"] for row in visits}
        for row in visits:
            extra = extras[row["call_id"]]
            last = last_visit[row["call_id"]] == row["id"]
            answered = row["outcome"] == "answered"
            talk = (row["talk_ended_at"] - row["answered_at"]) if answered and row["talk_ended_at"] else 0.0
            # Holds and transfers belong to the visit whose talk they happened in.
            during = (row["answered_at"] or 0.0, (row["talk_ended_at"] or float("inf")) + 1.0)
            holds = [held for at, held in extra["holds"] if during[0] <= at <= during[1]] if answered else []
            transfers = sum(1 for at in extra["transfers"] if during[0] <= at <= during[1]) if answered else 0
            facts.append(CallFact(
                call_id=row["call_id"], queue=row["queue"], agent_id=row["agent_id"] if answered else None,
                offered_at=row["enqueued_at"], outcome=row["outcome"], wait_seconds=row["wait_seconds"] or 0.0,
                talk_seconds=max(0.0, talk), hold_seconds=sum(holds), acw_seconds=acw.get(row["id"], 0.0),
                transfers=transfers, callback_requested=last and extra["callback_requested"],
                callback_completed=last and extra["callback_completed"],
                survey_score=extra["survey"] if last else None, complaint=row["queue"] in complaints))
        for row in ivr_only:
            extra = extras[row["call_id"]]
            facts.append(CallFact(
                call_id=row["call_id"], queue=None, agent_id=None, offered_at=row["started_at"], outcome="ivr_only",
                wait_seconds=0.0, callback_requested=extra["callback_requested"],
                callback_completed=extra["callback_completed"], survey_score=extra["survey"]))
        return facts

    async def _call_extras(self, call_ids: set[str]) -> dict[str, dict[str, Any]]:
        extras: dict[str, dict[str, Any]] = defaultdict(lambda: {
            "holds": [], "transfers": [], "callback_requested": False, "callback_completed": False, "survey": None})
        ids = sorted(call_ids)
        for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
            marks = ",".join("?" * len(chunk))
            for row in await self.store.fetchall(
                    f"SELECT call_id, kind, payload, status FROM ivr_records WHERE call_id IN ({marks})", chunk):
                extra = extras[row["call_id"]]
                if row["kind"] == "callback":
                    extra["callback_requested"] = True
                    extra["callback_completed"] = extra["callback_completed"] or row["status"] == "done"
                elif row["kind"] == "survey":
                    score = json.loads(row["payload"]).get("score")
                    extra["survey"] = int(score) if isinstance(score, int | str) and str(score).isdigit() else None
            for row in await self.store.fetchall(
                    f"SELECT call_id, at, kind, detail FROM call_events WHERE call_id IN ({marks})"
                    " AND kind IN ('transfer', 'resumed')", chunk):
                extra = extras[row["call_id"]]
                if row["kind"] == "transfer":
                    extra["transfers"].append(row["at"])
                else:
                    extra["holds"].append((row["at"], float(json.loads(row["detail"]).get("held_for", 0.0))))
        return extras

    async def _acw_after_talk(self, visits: list[dict[str, Any]]) -> dict[int, float]:
        """ACW seconds per answered visit: the agent's `acw` state that began when the talk ended.

        One query per agent (their state changes across the visits, and the one change after), not per
        visit: weeks of history for a forecast are tens of thousands of visits."""
        result: dict[int, float] = {}
        by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for visit in visits:
            if visit["outcome"] == "answered" and visit["talk_ended_at"] and visit["agent_id"]:
                by_agent[visit["agent_id"]].append(visit)
        for agent_id, answered in by_agent.items():
            first = min(visit["talk_ended_at"] for visit in answered) - 1.0
            last = max(visit["talk_ended_at"] for visit in answered) - 1.0
            rows = await self.store.fetchall(
                "SELECT at, state FROM agent_states WHERE agent_id = ? AND at >= ? AND at <= ? ORDER BY at, id",
                (agent_id, first, last + 1.0))
            rows += await self.store.fetchall(
                "SELECT at, state FROM agent_states WHERE agent_id = ? AND at > ? ORDER BY at, id LIMIT 1",
                (agent_id, last + 1.0))
            times = [row["at"] for row in rows]
            for visit in answered:
                # The first state change at or after the talk's end (less a second), as a query per visit would find.
                index = bisect.bisect_left(times, visit["talk_ended_at"] - 1.0)
                if index < len(rows) and rows[index]["state"] == "acw":
                    until = rows[index + 1]["at"] if index + 1 < len(rows) else self.clock.now()
                    result[visit["id"]] = max(0.0, until - rows[index]["at"])
        return result

    async def agent_spans(self, start: float, end: float) -> list[AgentStateSpan]:
        rows = await self.store.fetchall(
            "SELECT agent_id, at, state, reason FROM agent_states WHERE at < ? AND (at >= ? OR id IN"
            " (SELECT MAX(id) FROM agent_states WHERE at < ? GROUP BY agent_id)) ORDER BY agent_id, at, id",
            (end, start, start))
        spans: list[AgentStateSpan] = []
        now = min(end, self.clock.now())
        for i, row in enumerate(rows):
            if row["state"] == "logged_out":
                continue
            following = rows[i + 1] if i + 1 < len(rows) and rows[i + 1]["agent_id"] == row["agent_id"] else None
            span_end = following["at"] if following else now
            if span_end > row["at"]:
                spans.append(AgentStateSpan(row["agent_id"], row["state"], row["reason"], row["at"], span_end))
        return spans
